package failure

import (
	"errors"
	"fmt"
	"testing"
)

func TestPermanentKeepsTheMessageAndTheCause(t *testing.T) {
	t.Parallel()
	cause := errors.New("bucket \"x\" is not the pipeline bucket")
	err := fmt.Errorf("accept: %w", Permanent(cause))
	if !errors.Is(err, ErrPermanent) || !errors.Is(err, cause) || err.Error() != "accept: "+cause.Error() {
		t.Errorf("got %q (permanent %t, cause %t)", err, errors.Is(err, ErrPermanent), errors.Is(err, cause))
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	if errors.Is(cause, ErrPermanent) {
		t.Error("the cause itself became permanent")
	}
}
