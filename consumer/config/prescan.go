package config

// nodeBound returns an upper bound on the number of yaml.Node values that
// decoding every document of data builds, so that Parse can refuse a config
// with too many nodes before any is built. It stops as soon as the bound
// passes limit and returns that partial count (still above limit). It reads
// data once and allocates nothing: however hostile, a config that is refused
// here costs O(len(data)) time and no memory. data must be valid UTF-8.
//
// The parser (yaml.v3, a port of libyaml) builds a node only for a document,
// a document's root, or a child of a collection, and it starts every child at
// a token that one of a few characters produces:
//
//   - every document but the first starts with "---" at the start of a line,
//     and each has one root (an empty scalar if it has nothing else): 2 per
//     such "---", plus 2;
//   - each block sequence item follows its own entry indicator, a '-' followed
//     by a blank, a line break or the end: 1 each;
//   - a flow sequence's first item follows its '[' and every other item a
//     ',': 1 per '[';
//   - a flow mapping's first entry follows its '{' and every other entry a
//     ','; an entry is a key and a value, either possibly empty: 2 per '{'
//     and per ',';
//   - each block mapping entry, and each single-pair mapping inside a flow
//     sequence ("[a: b]"), is a key and a value started by a key token, which
//     is either an explicit '?' or a simple key, and a simple key exists only
//     when a ':' follows it: 2 per '?' and per ':'.
//
// A collection is itself a root or a child, so it is counted above. The
// characters are counted wherever they appear, in comments and quoted
// strings too, which can only make the bound higher. For configs as written
// it is about twice the real count (a full random-forest config: under 100).
func nodeBound(data []byte, limit int) int {
	n := 2
	for i, c := range data {
		switch c {
		case ':', '?', ',', '{':
			n += 2
		case '[':
			n++
		case '-':
			if i+1 == len(data) || mayBeBlankOrBreak(data[i+1]) {
				n++
			}
			if i+2 < len(data) && data[i+1] == '-' && data[i+2] == '-' && (i == 0 || mayEndLineBreak(data[i-1])) {
				n += 2
			}
		default:
			continue
		}
		if n > limit {
			return n
		}
	}
	return n
}

// mayBeBlankOrBreak reports whether c can begin a blank, a line break or
// a NUL, after which yaml.v3 reads '-' as a block entry indicator. 0xC2 and
// 0xE2 begin the line breaks NEL, LS and PS (and other characters, which
// only makes the count higher).
func mayBeBlankOrBreak(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', 0, 0xC2, 0xE2:
		return true
	}
	return false
}

// mayEndLineBreak reports whether c can be the last byte of what puts the
// next character at column 0: a line break (CR, LF, NEL, LS, PS) or the
// byte order mark at the start of the stream.
func mayEndLineBreak(c byte) bool {
	switch c {
	case '\r', '\n', 0x85, 0xA8, 0xA9, 0xBF:
		return true
	}
	return false
}
