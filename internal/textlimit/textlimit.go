// Package textlimit cuts text to a byte limit without breaking a
// character: the limits edp documents (a DLQ failure reason, an agent's
// refusal reason) are bytes of UTF-8, and a cut inside a multi-byte
// character turns into U+FFFD on the wire, three bytes past the limit. It is
// standard-library only.
package textlimit

import (
	"strings"
	"unicode/utf8"
)

// Ellipsis ends a text that Clip shortened.
const Ellipsis = "…"

// Clip returns s as valid UTF-8 of at most limit bytes. Invalid bytes become
// U+FFFD first, as JSON on the wire would make them anyway (growing the text
// past a limit checked on the raw bytes); a text still longer than limit is
// cut at a character boundary and ends in Ellipsis, so a reader knows it was
// cut. A limit under len(Ellipsis) leaves room for nothing but the cut
// text's first bytes that fit.
func Clip(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	if limit < len(Ellipsis) {
		return cutAt(s, max(limit, 0))
	}
	return cutAt(s, limit-len(Ellipsis)) + Ellipsis
}

// cutAt is the longest prefix of the valid UTF-8 s of at most n bytes that
// ends at a character boundary.
func cutAt(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Tail returns the end of s as valid UTF-8 of at most limit bytes: s
// itself when it fits, else Ellipsis followed by the longest suffix that
// fits, starting at a character boundary. It is Clip for text whose end
// matters most (the last lines a job printed).
func Tail(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	if limit < len(Ellipsis) {
		return tailFrom(s, len(s)-max(limit, 0))
	}
	return Ellipsis + tailFrom(s, len(s)-(limit-len(Ellipsis)))
}

// tailFrom is the suffix of the valid UTF-8 s that starts at the first
// character boundary at or after byte i.
func tailFrom(s string, i int) string {
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}
