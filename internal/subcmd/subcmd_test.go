package subcmd

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	var got []string
	cmds := map[string]Command{
		"b": {"second", func(_ context.Context, args []string, _, _ io.Writer) int { got = args; return 7 }},
		"a": {"first", nil},
	}
	var stderr bytes.Buffer
	if code := Dispatch(context.Background(), "prog", cmds, []string{"b", "-x", "y"}, io.Discard, &stderr); code != 7 || strings.Join(got, " ") != "-x y" {
		t.Errorf("dispatch b: code %d, args %q", code, got)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: prog <command>"},
		{[]string{"-h"}, 0, "  a         first\n  b         second\n"},
		{[]string{"zzz"}, 2, `prog: unknown command "zzz"`},
	} {
		stderr.Reset()
		if code := Dispatch(context.Background(), "prog", cmds, tc.args, io.Discard, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: code %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}
