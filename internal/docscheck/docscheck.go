// Package docscheck keeps the documentation honest about the repository: every
// `make` target, every `edp` and `consumer` command and flag and every CDK
// context key that a page names must exist, and every relative link (with its
// #anchor) must resolve. Its test runs the check over README.md, docs/**/*.md
// and examples/**/README.md (`make docs-check`).
//
// What exists is read from the sources of truth, never from a list kept here:
// make targets from the Makefile, commands and flags from the real binaries'
// help output (their verb listings and each flag set's `  -name` lines), and
// context keys from internal/settings. What counts as naming one is narrow, to
// keep false findings away:
//
//   - `make TARGET ...` in code (a code span or block): each word after make
//     that is not an option or a VAR=value assignment, up to the end of the
//     command (`;`, `&&`, `|`, `#`);
//   - `edp VERB [SUB] -flag ...` and `consumer CMD [SUB] -flag ...` in code:
//     the verb, a sub-verb the help names, and every -flag or --flag of the
//     same command line;
//   - `edp:KEY` anywhere (a name with a '-', such as the task tag
//     edp:started-by, is not a context key);
//   - markdown links and images outside code, `[text](path#anchor)` and
//     `[ref]: path`, whose target is not a URL.
//
// Standard library only.
package docscheck

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Finding is one problem at a line of a page.
type Finding struct {
	File string // slash-separated, relative to the repository root
	Line int
	Msg  string
}

func (f Finding) String() string { return fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Msg) }

// Program is what a command line program accepts, read from its help.
type Program struct {
	Name  string
	Verbs map[string]*Verb
}

// Verb is one subcommand: its flags, and its own subcommands (`dlq list`).
type Verb struct {
	Flags map[string]bool
	Subs  map[string]*Verb
}

// Checker holds what exists. The zero value knows nothing; fill it with
// MakeTargets, LoadProgram and the context keys.
type Checker struct {
	// Root is the repository root that relative links resolve in.
	Root string
	// Targets are the Makefile's targets; a name with % is a pattern.
	Targets []string
	// Programs by name: "edp", "consumer".
	Programs map[string]*Program
	// Keys are the CDK context keys, "edp:..." included.
	Keys map[string]bool
}

// MakeTargets returns the targets a Makefile defines: the names before the
// colon of every rule line (not variable assignments, not special targets
// such as .PHONY, not targets built from variables).
func MakeTargets(makefile []byte) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(makefile), "\n") {
		if line == "" || line[0] == '\t' || line[0] == '#' {
			continue
		}
		m := ruleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, t := range strings.Fields(m[1]) {
			if strings.HasPrefix(t, ".") || seen[t] {
				continue
			}
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

var ruleLine = regexp.MustCompile(`^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*:(?:[^=:]|$)`)

// helpTimeout bounds one help call: -h parses flags and returns.
const helpTimeout = 30 * time.Second

// help runs bin with args and returns what it printed on both streams. The
// exit code does not matter: usage goes out with 0 or 2.
func help(bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), helpTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	return out.String()
}

// LoadProgram reads the verbs of the program bin (named name in the docs)
// from its listing with no arguments, each verb's flags from `VERB -h`, and
// the sub-verbs that a verb's usage names (`local [run] | up | down`,
// `dlq list|redrive`) from `VERB SUB -h`. A sub-verb counts only when its
// own help names it ("Usage of dlq list", "usage: consumer dlq list"), so a
// placeholder never becomes a command.
func LoadProgram(name, bin string) (*Program, error) {
	p := &Program{Name: name, Verbs: map[string]*Verb{}}
	listing := help(bin)
	summaries := parseListing(listing)
	if len(summaries) == 0 {
		return nil, fmt.Errorf("%s: no commands in its listing:\n%s", name, listing)
	}
	for verb, summary := range summaries {
		text := help(bin, verb, "-h")
		v := &Verb{Flags: parseFlags(text), Subs: map[string]*Verb{}}
		for _, sub := range subCandidates(verb, summary+"\n"+text) {
			subText := help(bin, verb, sub, "-h")
			if !namesCommand(subText, verb+" "+sub) {
				continue
			}
			v.Subs[sub] = &Verb{Flags: parseFlags(subText)}
		}
		p.Verbs[verb] = v
	}
	return p, nil
}

// parseListing reads subcmd.Usage: the lines after "commands:", each
// "  name  summary", up to a blank line.
func parseListing(text string) map[string]string {
	out := map[string]string{}
	in := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.TrimSpace(line) == "commands:":
			in = true
		case in && strings.TrimSpace(line) == "":
			if len(out) > 0 {
				in = false
			}
		case in:
			if m := listingLine.FindStringSubmatch(line); m != nil {
				out[m[1]] = m[2]
			}
		}
	}
	return out
}

var listingLine = regexp.MustCompile(`^\s+([a-z][a-z0-9-]*)(?:\s+(.*))?$`)

// parseFlags reads flag.PrintDefaults lines: "  -name type" at two spaces.
func parseFlags(text string) map[string]bool {
	out := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
	}
	return out
}

var flagLine = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9_.-]*)`)

// subCandidates finds words a usage text offers after verb as alternatives
// ("verb a|b", "verb [a] | b | c") or as a flag set's name ("Usage of verb a").
func subCandidates(verb, text string) []string {
	var out []string
	alt := regexp.MustCompile(`\b` + regexp.QuoteMeta(verb) + `\s+(\[?[a-z][a-z0-9-]*\]?(?:\s*\|\s*\[?[a-z][a-z0-9-]*\]?)+)`)
	for _, m := range alt.FindAllStringSubmatch(text, -1) {
		for _, w := range strings.Split(m[1], "|") {
			out = append(out, strings.Trim(strings.TrimSpace(w), "[]"))
		}
	}
	of := regexp.MustCompile(`Usage of ` + regexp.QuoteMeta(verb) + ` ([a-z][a-z0-9-]*):`)
	for _, m := range of.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func namesCommand(text, cmd string) bool {
	return strings.Contains(text, "Usage of "+cmd+":") || strings.Contains(text, " "+cmd+" ") ||
		strings.Contains(text, " "+cmd+"\n") || strings.Contains(text, " "+cmd+":")
}

// CheckFile checks one page, named by its slash-separated path under Root.
func (c *Checker) CheckFile(name string) ([]Finding, error) {
	src, err := os.ReadFile(filepath.Join(c.Root, filepath.FromSlash(name)))
	if err != nil {
		return nil, err
	}
	return c.Check(name, string(src)), nil
}

// Check checks the text of the page name (slash-separated, under Root).
func (c *Checker) Check(name, src string) []Finding {
	var out []Finding
	report := func(line int, format string, args ...any) {
		out = append(out, Finding{File: name, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	for _, l := range splitMarkdown(src) {
		for _, m := range keyRef.FindAllStringSubmatch(l.text, -1) {
			if strings.Contains(m[1], "-") {
				continue // a tag (edp:started-by), not a context key
			}
			if !c.Keys[m[1]] {
				report(l.n, "context key %q is not read by internal/settings", m[1])
			}
		}
		for _, code := range l.code {
			c.checkCode(code, func(format string, args ...any) { report(l.n, format, args...) })
		}
		for _, target := range l.links {
			if msg := c.checkLink(name, src, target); msg != "" {
				report(l.n, "%s", msg)
			}
		}
	}
	return out
}

var keyRef = regexp.MustCompile(`\b(edp:[A-Za-z][A-Za-z0-9-]*)`)

// line is one line of a page: its number, its whole text, the code on it
// (the line itself in a code block, else its code spans) and the link
// targets outside code.
type line struct {
	n     int
	text  string
	block bool // in a code block, or its fence
	code  []string
	links []string
}

// splitMarkdown splits a page into lines and finds their code and links.
// Fenced blocks (``` and ~~~) and indented blocks are code; a code span may
// continue on the next line of its paragraph. A shell line ending in a
// backslash continues on the next one (reported at its first line).
func splitMarkdown(src string) []line {
	var out []line
	var fence string
	prevBlank, prevIndented := true, false
	openSpan := "" // a code span's start carried from the previous line
	cont := -1     // the index of a code block line continued with a backslash
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 1024*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		l := line{n: n, text: text, block: true}
		switch {
		case fence != "":
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
				fence = ""
				break
			}
			if cont >= 0 {
				out[cont].code[0] = strings.TrimSuffix(out[cont].code[0], `\`) + " " + trimmed
				if !strings.HasSuffix(trimmed, `\`) {
					cont = -1
				}
				l.code = nil
				break
			}
			l.code = []string{text}
		case strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~"):
			fence = trimmed[:3]
			openSpan = ""
		case (prevBlank || prevIndented) && strings.HasPrefix(text, "    ") && trimmed != "" && !listItem.MatchString(trimmed):
			l.code = []string{text}
			prevIndented = true
		default:
			l.block = false
			prevIndented = false
			if trimmed == "" {
				openSpan = ""
				break
			}
			var prose string
			l.code, prose, openSpan = codeSpans(openSpan, text)
			l.links = links(prose)
		}
		if fence == "" && !strings.HasPrefix(text, "    ") {
			prevIndented = false
		}
		prevBlank = trimmed == ""
		out = append(out, l)
		if fence != "" && cont < 0 && len(l.code) == 1 && strings.HasSuffix(strings.TrimSpace(l.code[0]), `\`) {
			cont = len(out) - 1
		}
	}
	return out
}

var listItem = regexp.MustCompile(`^([-*+]|\d+[.)])\s`)

// codeSpans splits a prose line into its code spans and the rest. open is an
// unclosed span from the previous line (its backticks and text so far); the
// span still open at the end of this line is returned the same way.
func codeSpans(open, text string) (spans []string, prose string, stillOpen string) {
	var rest strings.Builder
	s := text
	if open != "" {
		ticks := open[:strings.IndexFunc(open, func(r rune) bool { return r != '`' })]
		if i := strings.Index(s, ticks); i >= 0 {
			spans = append(spans, open[len(ticks):]+" "+s[:i])
			s = s[i+len(ticks):]
		} else {
			return nil, "", open + " " + s
		}
	}
	for {
		i := strings.IndexByte(s, '`')
		if i < 0 {
			rest.WriteString(s)
			break
		}
		rest.WriteString(s[:i])
		j := i
		for j < len(s) && s[j] == '`' {
			j++
		}
		ticks := s[i:j]
		k := strings.Index(s[j:], ticks)
		if k < 0 {
			return spans, rest.String(), ticks + s[j:]
		}
		spans = append(spans, s[j:j+k])
		s = s[j+k+len(ticks):]
	}
	return spans, rest.String(), ""
}

var (
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^()\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	refDef     = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	htmlRef    = regexp.MustCompile(`<(?:a|img)\b[^>]*\b(?:href|src)="([^"]+)"`)
)

func links(prose string) []string {
	var out []string
	for _, re := range []*regexp.Regexp{inlineLink, refDef, htmlRef} {
		for _, m := range re.FindAllStringSubmatch(prose, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// checkLink returns what is wrong with a link from page name, or "".
func (c *Checker) checkLink(name, src, target string) string {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "//") {
		return ""
	}
	file, anchor, _ := strings.Cut(target, "#")
	resolved := name
	if file != "" {
		if strings.HasPrefix(file, "/") {
			resolved = path.Clean(strings.TrimPrefix(file, "/"))
		} else {
			resolved = path.Join(path.Dir(name), file)
		}
		if resolved == ".." || strings.HasPrefix(resolved, "../") {
			return fmt.Sprintf("link %q leaves the repository", target)
		}
		if _, err := os.Stat(filepath.Join(c.Root, filepath.FromSlash(resolved))); err != nil {
			return fmt.Sprintf("link %q: %s does not exist", target, resolved)
		}
	}
	if anchor == "" || !strings.HasSuffix(resolved, ".md") {
		return ""
	}
	if resolved != name {
		b, err := os.ReadFile(filepath.Join(c.Root, filepath.FromSlash(resolved)))
		if err != nil {
			return fmt.Sprintf("link %q: %v", target, err)
		}
		src = string(b)
	}
	if !slices.Contains(Anchors(string(src)), anchor) {
		return fmt.Sprintf("link %q: %s has no heading with the anchor #%s", target, resolved, anchor)
	}
	return ""
}

// Anchors lists the anchors GitHub gives a page: one per heading (its
// slug, -1, -2 ... for repeats) and explicit <a name|id="..."> anchors.
func Anchors(src string) []string {
	var out []string
	seen := map[string]int{}
	for _, l := range splitMarkdown(src) {
		if l.block {
			continue
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(l.text, -1) {
			out = append(out, m[1])
		}
		m := heading.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		s := Slug(m[1])
		if k := seen[s]; k > 0 {
			out = append(out, fmt.Sprintf("%s-%d", s, k))
		} else {
			out = append(out, s)
		}
		seen[s]++
	}
	return out
}

var (
	heading    = regexp.MustCompile(`^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
	mdLinkText = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag    = regexp.MustCompile(`<[^>]+>`)
)

// Slug is GitHub's anchor for a heading's text: the rendered text (markup
// removed) in lower case, spaces as '-', and everything but letters,
// digits, '-' and '_' dropped.
func Slug(text string) string {
	text = mdLinkText.ReplaceAllString(text, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	text = strings.NewReplacer("`", "", "**", "", "*", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mn, r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// checkCode checks the make, edp and consumer command lines in one piece of
// code. make and an unknown verb count only where a command starts (the
// first word, after a prompt, a separator or VAR=value), so that prose in a
// code block ("its consumer stops") is not read as a command; a known verb
// has its flags checked wherever it stands.
func (c *Checker) checkCode(code string, report func(format string, args ...any)) {
	code = strings.ReplaceAll(code, `\|`, "|")
	code = placeholder.ReplaceAllString(code, "<x>")
	words := strings.Fields(code)
	for i, w := range words {
		atStart := i == 0 || commandStart(words[i-1])
		switch {
		case w == "make":
			if atStart {
				c.checkMake(command(words[i+1:]), report)
			}
		default:
			for name, p := range c.Programs {
				if w == name || binaryPath(w, name) {
					c.checkProgram(p, command(words[i+1:]), atStart || w != name, report)
				}
			}
		}
	}
}

// binaryPath tells whether w is a path to the program name: bin/edp,
// ./cmd/edp, ./consumer (not a package path such as edp/consumer).
func binaryPath(w, name string) bool {
	if !strings.HasSuffix(w, "/"+name) {
		return false
	}
	for _, p := range []string{"bin/", "./", "../", "/", "$"} {
		if strings.HasPrefix(w, p) {
			return true
		}
	}
	return false
}

var placeholder = regexp.MustCompile(`<[^<>]*>`)

// commandStart tells whether a command may start after the word prev.
func commandStart(prev string) bool {
	switch prev {
	case "$", "%", ">", ";", "&&", "||", "|", "(", "$(", "sudo", "env", "exec", "time", "then", "do", "else":
		return true
	}
	return strings.HasSuffix(prev, ";") || makeVar.MatchString(prev)
}

// command returns the words of one shell command: up to a separator or a
// comment.
func command(words []string) []string {
	for i, w := range words {
		if w == ";" || w == "&&" || w == "||" || w == "|" || w == "#" || strings.HasPrefix(w, "#") ||
			w == "→" || w == "->" || w == ")" || w == "(" {
			return words[:i]
		}
		if strings.HasSuffix(w, ";") || strings.HasSuffix(w, ")") {
			return append(words[:i:i], strings.TrimRight(w, ";)"))
		}
	}
	return words
}

var (
	makeVar    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
	targetWord = regexp.MustCompile(`^[A-Za-z0-9_./<>%-]+$`)
	flagWord   = regexp.MustCompile(`^--?([A-Za-z][A-Za-z0-9_.-]*)(?:=.*)?$`)
	verbWord   = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

func (c *Checker) checkMake(args []string, report func(format string, args ...any)) {
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "-") || makeVar.MatchString(a):
			continue
		case !targetWord.MatchString(a):
			return
		case !c.hasTarget(a):
			report("make target %q is not in the Makefile", a)
		}
	}
}

// hasTarget matches a target named in the docs, where <word> is a
// placeholder (deploy-<arch>), against the Makefile's, where % is one.
func (c *Checker) hasTarget(name string) bool {
	doc := regexp.MustCompile(`<[^>]*>`).Split(name, -1)
	for i := range doc {
		doc[i] = regexp.QuoteMeta(doc[i])
	}
	re := regexp.MustCompile("^" + strings.Join(doc, ".+") + "$")
	for _, t := range c.Targets {
		if re.MatchString(t) {
			return true
		}
		if strings.Contains(t, "%") {
			parts := strings.Split(t, "%")
			for i := range parts {
				parts[i] = regexp.QuoteMeta(parts[i])
			}
			if regexp.MustCompile("^" + strings.Join(parts, ".+") + "$").MatchString(name) {
				return true
			}
		}
	}
	return false
}

func (c *Checker) checkProgram(p *Program, args []string, atStart bool, report func(format string, args ...any)) {
	if len(args) == 0 || !verbWord.MatchString(args[0]) {
		return
	}
	v, ok := p.Verbs[args[0]]
	if !ok {
		if atStart {
			report("%s has no command %q", p.Name, args[0])
		}
		return
	}
	cmd, flags := p.Name+" "+args[0], v.Flags
	rest := args[1:]
	if len(rest) > 0 && len(v.Subs) > 0 {
		if alts := strings.Split(strings.Trim(rest[0], "[]"), "|"); allWords(alts) {
			for _, a := range alts {
				if _, ok := v.Subs[a]; !ok {
					report("%s has no subcommand %q", cmd, a)
				}
			}
			// Flags after alternatives (dlq list|redrive -json) must be
			// flags of each of them.
			cmd, flags = cmd+" "+rest[0], nil
			for _, a := range alts {
				s, ok := v.Subs[a]
				if !ok {
					continue
				}
				if flags == nil {
					flags = maps.Clone(s.Flags)
				}
				maps.DeleteFunc(flags, func(f string, _ bool) bool { return !s.Flags[f] })
			}
			rest = rest[1:]
		}
	}
	for _, a := range rest {
		// A synopsis brackets optional flags: [-since DURATION].
		m := flagWord.FindStringSubmatch(strings.Trim(a, "[]{},"))
		if m == nil {
			continue
		}
		if name := m[1]; !flags[name] && name != "h" && name != "help" {
			report("%s has no flag -%s", cmd, name)
		}
	}
}

func allWords(ws []string) bool {
	for _, w := range ws {
		if !verbWord.MatchString(w) {
			return false
		}
	}
	return len(ws) > 0
}
