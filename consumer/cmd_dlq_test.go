package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/edp-pipelines/edp/internal/names"
)

func TestDLQSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no subcommand", nil, nil, "usage: consumer dlq list|redrive"},
		{"unknown subcommand", []string{"purge"}, nil, "usage: consumer dlq list|redrive"},
		{"list without a DLQ", []string{"list"}, nil, names.EnvDLQURL + " (or -dlq-url) is required"},
		{"redrive without a work queue", []string{"redrive"}, map[string]string{names.EnvDLQURL: "d"}, names.EnvQueueURL + " (or -queue-url) is required"},
		{"hold too short", []string{"list", "-dlq-url", "d", "-hold", "10ms"}, nil, "-hold 10ms: want 1s to 12h"},
		{"max", []string{"list", "-dlq-url", "d", "-max", "0"}, nil, "-max 0: want at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := runDLQ(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) || stdout.Len() != 0 {
				t.Errorf("exit %d, stderr %q: want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}
