package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"unicode/utf8"

	"github.com/edp-pipelines/edp/consumer/failure"
)

// The DLQ reason is documented as at most MaxReasonBytes: it is cut at a
// character, never inside one (a cut inside one turns into U+FFFD on the
// wire and makes the attribute 1002 bytes).
func TestDeadLetterReasonIsCutAtACharacter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, reason string
	}{
		{"two-byte character across the limit", strings.Repeat("a", 999) + "é and more"},
		{"four-byte characters", "x" + strings.Repeat("🙂", 300)},
		// 900 bytes as sent, 1500 once each invalid byte is U+FFFD on the wire.
		{"invalid bytes", strings.Repeat("\xffa", 300) + strings.Repeat("b", 300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSQS("configs/bad.yaml")
				c := newTestConsumer(t, Config{}, f, keyJobs(func(context.Context, string) (Result, error) {
					return Result{}, failure.Permanent(errors.New(tc.reason))
				}))
				if _, err := c.Drain(context.Background()); err != nil {
					t.Fatal(err)
				}
				_, _, dlq, _ := f.snapshot()
				if len(dlq) != 1 {
					t.Fatalf("DLQ holds %d messages, want 1", len(dlq))
				}
				got := dlq[0].Attrs[AttrReason]
				if !utf8.ValidString(got) || len(got) > MaxReasonBytes || !strings.HasSuffix(got, "…") {
					t.Errorf("reason of %d bytes (valid UTF-8: %v) ending %q: want valid UTF-8 of at most %d bytes ending in …",
						len(got), utf8.ValidString(got), got[max(0, len(got)-8):], MaxReasonBytes)
				}
			})
		})
	}
}
