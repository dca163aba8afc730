package textlimit

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 10, "abcdefg…"},
		{"abcdefgé", 10, "abcdefgé"},        // 9 bytes: fits
		{"abcdefgéé", 10, "abcdefg…"},       // 11 bytes: cut before the first é
		{"abcdézzzz", 8, "abcd…"},           // the cut at byte 5 falls inside é: back to its start
		{"x🙂🙂🙂", 10, "x🙂…"},                 // the cut at byte 7 falls inside the second 🙂
		{"ab\xffcd", 10, "ab\uFFFDcd"},      // an invalid byte made valid
		{"ab\xffcdefgh", 10, "ab\uFFFDcd…"}, // and counted at its encoded size
		{"ééé", 2, "é"},                     // no room for the ellipsis
		{"ééé", 1, ""},
		{"abc", 0, ""},
		{"", 0, ""},
	} {
		got := Clip(tc.in, tc.limit)
		if got != tc.want || len(got) > tc.limit || !utf8.ValidString(got) {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}

// Whatever the text, the result is valid UTF-8 within the limit and a
// prefix of the (made valid) text.
func FuzzClip(f *testing.F) {
	f.Add(strings.Repeat("a", 999)+"é", 1000)
	f.Add("\xff\xfe🙂", 4)
	f.Fuzz(func(t *testing.T, s string, limit int) {
		if limit < 0 || limit > 1<<16 {
			return
		}
		got := Clip(s, limit)
		valid := strings.ToValidUTF8(s, "\uFFFD")
		if len(got) > limit || !utf8.ValidString(got) {
			t.Fatalf("Clip(%q, %d) = %q: over the limit or invalid", s, limit, got)
		}
		if !strings.HasPrefix(valid, strings.TrimSuffix(got, Ellipsis)) {
			t.Fatalf("Clip(%q, %d) = %q: not a prefix", s, limit, got)
		}
	})
}

func TestTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s     string
		limit int
		want  string
	}{
		{"short", 10, "short"},
		{"0123456789", 10, "0123456789"},
		{"0123456789abc", 10, "…6789abc"},
		// "é" is two bytes: the cut may not start inside it.
		{"aaaaéxyz", 7, "…xyz"},
		{"aaaaéxyz", 8, "…éxyz"},
		{"abc\xffdef", 20, "abc\uFFFDdef"},
		{"abcdef", 2, "ef"},
		{"abcdef", 0, ""},
	}
	for _, tt := range tests {
		got := Tail(tt.s, tt.limit)
		if got != tt.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tt.s, tt.limit, got, tt.want)
		}
		if len(got) > max(tt.limit, 0) || !utf8.ValidString(got) {
			t.Errorf("Tail(%q, %d) = %q: over the limit or invalid UTF-8", tt.s, tt.limit, got)
		}
	}
}
