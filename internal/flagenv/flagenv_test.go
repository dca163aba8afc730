package flagenv

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestName(t *testing.T) {
	for flagName, want := range map[string]string{"retry-delay": "EDP_RETRY_DELAY", "grace": "EDP_GRACE", "queue-url": "EDP_QUEUE_URL"} {
		if got := Name(flagName); got != want {
			t.Errorf("Name(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestFlagWinsOverVariableWhichWinsOverDefault(t *testing.T) {
	env := map[string]string{"EDP_GRACE": "30s", "EDP_RETRY_DELAY": "5s", "EDP_NAME": "from-env"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	grace := fs.Duration("grace", time.Second, "")
	retry := fs.Duration("retry-delay", time.Second, "")
	name := fs.String("name", "default", "")
	other := fs.Int("other", 7, "")
	if err := Parse(fs, []string{"-grace", "1m"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *grace != time.Minute || *retry != 5*time.Second || *name != "from-env" || *other != 7 {
		t.Errorf("got grace %v retry %v name %q other %d", *grace, *retry, *name, *other)
	}
}

func TestInvalidVariableNamesItAndTheFlag(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Duration("retry-delay", time.Second, "")
	err := Parse(fs, nil, func(k string) string { return map[string]string{"EDP_RETRY_DELAY": "soon"}[k] })
	if err == nil || !strings.Contains(err.Error(), "EDP_RETRY_DELAY") || !strings.Contains(err.Error(), "-retry-delay") {
		t.Fatalf("got %v, want an error naming EDP_RETRY_DELAY and -retry-delay", err)
	}
}
