package alarms

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Expr is a parsed CloudWatch metric-math expression, evaluated one period at
// a time: every metric id stands for one data point, or for none (missing).
//
// Supported: numbers, metric ids (a lowercase letter, then letters, digits
// or underscores), + - * / ^, unary -, the comparisons > >= < <= == !=,
// AND (&&), OR (||), NOT (!), parentheses, and the functions IF(cond, a[, b]),
// FILL(m, value), MAX, MIN, SUM, AVG (of one expression or of an array
// [a, b, ...]), ABS, CEIL and FLOOR. Anything else is a parse error naming
// the expression and the 1-based position.
//
// Missing data propagates as in CloudWatch, where a time series simply has
// no value at a timestamp: an operator or function with a missing operand
// has no value; IF has no value when its condition has none; FILL replaces
// a missing value; MAX, MIN, SUM and AVG of an array skip the missing
// elements and have no value only when all are missing. A division by zero
// (or any non-finite result) has no value, since CloudWatch drops
// non-finite points.
type Expr struct {
	src  string
	root node
	ids  []string
}

// ParseExpr parses a metric-math expression.
func ParseExpr(src string) (*Expr, error) {
	p := &parser{src: src}
	if err := p.lex(); err != nil {
		return nil, err
	}
	root, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errAt(t.pos, "unexpected %s", t.describe())
	}
	if err := p.checkArrays(root, false); err != nil {
		return nil, err
	}
	e := &Expr{src: src, root: root}
	seen := map[string]bool{}
	collectIDs(root, func(id string) {
		if !seen[id] {
			seen[id] = true
			e.ids = append(e.ids, id)
		}
	})
	return e, nil
}

// String returns the expression as written.
func (e *Expr) String() string { return e.src }

// IDs returns the metric ids the expression refers to, in order of first use.
func (e *Expr) IDs() []string { return append([]string(nil), e.ids...) }

// Eval evaluates the expression for one period. values holds one data point
// per id; an id absent from values is missing data. ok is false when the
// result has no value.
func (e *Expr) Eval(values map[string]float64) (v float64, ok bool) {
	return e.root.eval(values)
}

// node is one node of the syntax tree.
type node interface {
	eval(values map[string]float64) (float64, bool)
}

type numNode float64

func (n numNode) eval(map[string]float64) (float64, bool) { return float64(n), true }

type idNode string

func (n idNode) eval(values map[string]float64) (float64, bool) {
	v, ok := values[string(n)]
	return v, ok
}

type unaryNode struct {
	op string // "-" or "NOT"
	x  node
}

func (n *unaryNode) eval(values map[string]float64) (float64, bool) {
	x, ok := n.x.eval(values)
	if !ok {
		return 0, false
	}
	if n.op == "-" {
		return -x, true
	}
	return truth(x == 0), true
}

type binaryNode struct {
	op   string
	l, r node
}

func (n *binaryNode) eval(values map[string]float64) (float64, bool) {
	l, lok := n.l.eval(values)
	r, rok := n.r.eval(values)
	if !lok || !rok {
		return 0, false
	}
	var v float64
	switch n.op {
	case "+":
		v = l + r
	case "-":
		v = l - r
	case "*":
		v = l * r
	case "/":
		v = l / r
	case "^":
		v = math.Pow(l, r)
	case ">":
		v = truth(l > r)
	case ">=":
		v = truth(l >= r)
	case "<":
		v = truth(l < r)
	case "<=":
		v = truth(l <= r)
	case "==":
		v = truth(l == r)
	case "!=":
		v = truth(l != r)
	case "AND":
		v = truth(l != 0 && r != 0)
	case "OR":
		v = truth(l != 0 || r != 0)
	}
	return finite(v)
}

// arrayNode is [a, b, ...]; only an argument of an aggregate function.
type arrayNode struct {
	elems []node
	pos   int
}

func (n *arrayNode) eval(map[string]float64) (float64, bool) { return 0, false }

type callNode struct {
	fn   string
	args []node
}

func (n *callNode) eval(values map[string]float64) (float64, bool) {
	switch n.fn {
	case "IF":
		c, ok := n.args[0].eval(values)
		if !ok {
			return 0, false
		}
		if c != 0 {
			return n.args[1].eval(values)
		}
		if len(n.args) == 2 {
			return 0, false // IF(cond, a) has no value where cond is false
		}
		return n.args[2].eval(values)
	case "FILL":
		if v, ok := n.args[0].eval(values); ok {
			return v, true
		}
		return n.args[1].eval(values)
	case "ABS", "CEIL", "FLOOR":
		x, ok := n.args[0].eval(values)
		if !ok {
			return 0, false
		}
		switch n.fn {
		case "ABS":
			return math.Abs(x), true
		case "CEIL":
			return math.Ceil(x), true
		}
		return math.Floor(x), true
	}
	// MAX, MIN, SUM, AVG: over the present elements.
	elems := n.args
	if a, ok := n.args[0].(*arrayNode); ok {
		elems = a.elems
	}
	var acc float64
	count := 0
	for _, el := range elems {
		x, ok := el.eval(values)
		if !ok {
			continue
		}
		switch {
		case count == 0:
			acc = x
		case n.fn == "MAX":
			acc = math.Max(acc, x)
		case n.fn == "MIN":
			acc = math.Min(acc, x)
		default: // SUM, AVG
			acc += x
		}
		count++
	}
	if count == 0 {
		return 0, false
	}
	if n.fn == "AVG" {
		acc /= float64(count)
	}
	return finite(acc)
}

func truth(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func finite(v float64) (float64, bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// checkArrays rejects an array anywhere but as the argument of MAX, MIN,
// SUM or AVG (allowed says the parent is such a call).
func (p *parser) checkArrays(n node, allowed bool) error {
	switch n := n.(type) {
	case *unaryNode:
		return p.checkArrays(n.x, false)
	case *binaryNode:
		if err := p.checkArrays(n.l, false); err != nil {
			return err
		}
		return p.checkArrays(n.r, false)
	case *arrayNode:
		if !allowed {
			return p.errAt(n.pos, "an array is only allowed as the argument of MAX, MIN, SUM or AVG")
		}
		for _, e := range n.elems {
			if err := p.checkArrays(e, false); err != nil {
				return err
			}
		}
	case *callNode:
		for _, a := range n.args {
			if err := p.checkArrays(a, aggregates[n.fn]); err != nil {
				return err
			}
		}
	}
	return nil
}

func collectIDs(n node, f func(string)) {
	switch n := n.(type) {
	case idNode:
		f(string(n))
	case *unaryNode:
		collectIDs(n.x, f)
	case *binaryNode:
		collectIDs(n.l, f)
		collectIDs(n.r, f)
	case *arrayNode:
		for _, e := range n.elems {
			collectIDs(e, f)
		}
	case *callNode:
		for _, a := range n.args {
			collectIDs(a, f)
		}
	}
}

// functions are the supported functions and their argument counts.
var functions = map[string]struct{ min, max int }{
	"IF": {2, 3}, "FILL": {2, 2},
	"MAX": {1, 1}, "MIN": {1, 1}, "SUM": {1, 1}, "AVG": {1, 1},
	"ABS": {1, 1}, "CEIL": {1, 1}, "FLOOR": {1, 1},
}

// aggregates take an array.
var aggregates = map[string]bool{"MAX": true, "MIN": true, "SUM": true, "AVG": true}

type tokKind int

const (
	tokEOF tokKind = iota
	tokNum
	tokIdent // metric id: starts with a lowercase letter
	tokName  // anything else made of letters: a function or a keyword
	tokOp
)

type token struct {
	kind tokKind
	text string
	num  float64
	pos  int // 1-based
}

func (t token) describe() string {
	if t.kind == tokEOF {
		return "end of expression"
	}
	return strconv.Quote(t.text)
}

type parser struct {
	src  string
	toks []token
	i    int
}

func (p *parser) errAt(pos int, format string, args ...any) error {
	return fmt.Errorf("metric math %q: %s at position %d", p.src, fmt.Sprintf(format, args...), pos)
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

func (p *parser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isDigit(c) || c == '.' && i+1 < len(s) && isDigit(s[i+1]):
			j := i
			for j < len(s) && (isDigit(s[j]) || s[j] == '.') {
				j++
			}
			if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
				k := j + 1
				if k < len(s) && (s[k] == '+' || s[k] == '-') {
					k++
				}
				if k < len(s) && isDigit(s[k]) {
					for k < len(s) && isDigit(s[k]) {
						k++
					}
					j = k
				}
			}
			v, err := strconv.ParseFloat(s[i:j], 64)
			if err != nil {
				return p.errAt(i+1, "bad number %q", s[i:j])
			}
			p.toks = append(p.toks, token{kind: tokNum, text: s[i:j], num: v, pos: i + 1})
			i = j
		case isLetter(c) || c == '_':
			j := i
			for j < len(s) && (isLetter(s[j]) || isDigit(s[j]) || s[j] == '_') {
				j++
			}
			kind := tokName
			if c >= 'a' && c <= 'z' {
				kind = tokIdent
			}
			p.toks = append(p.toks, token{kind: kind, text: s[i:j], pos: i + 1})
			i = j
		default:
			op := ""
			for _, cand := range []string{">=", "<=", "==", "!=", "&&", "||", "+", "-", "*", "/", "^", ">", "<", "!", "(", ")", "[", "]", ","} {
				if strings.HasPrefix(s[i:], cand) {
					op = cand
					break
				}
			}
			if op == "" {
				return p.errAt(i+1, "unsupported character %q", rune(c))
			}
			p.toks = append(p.toks, token{kind: tokOp, text: op, pos: i + 1})
			i += len(op)
		}
	}
	p.toks = append(p.toks, token{kind: tokEOF, pos: len(s) + 1})
	return nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

// accept consumes the next token if it is one of the operators or keywords.
func (p *parser) accept(texts ...string) (string, bool) {
	t := p.peek()
	if t.kind != tokOp && t.kind != tokName {
		return "", false
	}
	for _, x := range texts {
		if t.text == x {
			p.i++
			return x, true
		}
	}
	return "", false
}

func (p *parser) expect(text string) error {
	t := p.peek()
	if t.kind == tokOp && t.text == text {
		p.i++
		return nil
	}
	return p.errAt(t.pos, "expected %q, found %s", text, t.describe())
}

// Precedence, lowest first: OR, AND, NOT, comparisons, + -, * /, unary -, ^.
func (p *parser) parseExpr() (node, error) { return p.parseOr() }

func (p *parser) parseOr() (node, error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for {
		if _, ok := p.accept("OR", "||"); !ok {
			return l, nil
		}
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = &binaryNode{op: "OR", l: l, r: r}
	}
}

func (p *parser) parseAnd() (node, error) {
	l, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for {
		if _, ok := p.accept("AND", "&&"); !ok {
			return l, nil
		}
		r, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		l = &binaryNode{op: "AND", l: l, r: r}
	}
}

func (p *parser) parseNot() (node, error) {
	if _, ok := p.accept("NOT", "!"); ok {
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &unaryNode{op: "NOT", x: x}, nil
	}
	return p.parseCompare()
}

func (p *parser) parseCompare() (node, error) {
	l, err := p.parseAdd()
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.accept(">=", "<=", "==", "!=", ">", "<")
		if !ok {
			return l, nil
		}
		r, err := p.parseAdd()
		if err != nil {
			return nil, err
		}
		l = &binaryNode{op: op, l: l, r: r}
	}
}

func (p *parser) parseAdd() (node, error) {
	l, err := p.parseMul()
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.accept("+", "-")
		if !ok {
			return l, nil
		}
		r, err := p.parseMul()
		if err != nil {
			return nil, err
		}
		l = &binaryNode{op: op, l: l, r: r}
	}
}

func (p *parser) parseMul() (node, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.accept("*", "/")
		if !ok {
			return l, nil
		}
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l = &binaryNode{op: op, l: l, r: r}
	}
}

func (p *parser) parseUnary() (node, error) {
	if op, ok := p.accept("-", "+"); ok {
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if op == "+" {
			return x, nil
		}
		return &unaryNode{op: "-", x: x}, nil
	}
	return p.parsePow()
}

func (p *parser) parsePow() (node, error) {
	base, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	if _, ok := p.accept("^"); ok {
		exp, err := p.parseUnary() // right-associative: 2^3^2 = 2^(3^2)
		if err != nil {
			return nil, err
		}
		return &binaryNode{op: "^", l: base, r: exp}, nil
	}
	return base, nil
}

func (p *parser) parsePrimary() (node, error) {
	t := p.next()
	switch t.kind {
	case tokNum:
		return numNode(t.num), nil
	case tokIdent:
		if p.peek().kind == tokOp && p.peek().text == "(" {
			return nil, p.errAt(t.pos, "unsupported function %s (functions are upper case)", t.text)
		}
		return idNode(t.text), nil
	case tokName:
		return p.parseCall(t)
	case tokOp:
		switch t.text {
		case "(":
			x, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			return x, nil
		case "[":
			return p.parseArray(t)
		}
	}
	return nil, p.errAt(t.pos, "unexpected %s", t.describe())
}

func (p *parser) parseArray(open token) (node, error) {
	var elems []node
	for {
		x, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		elems = append(elems, x)
		if _, ok := p.accept(","); !ok {
			break
		}
	}
	if err := p.expect("]"); err != nil {
		return nil, err
	}
	return &arrayNode{elems: elems, pos: open.pos}, nil
}

func (p *parser) parseCall(name token) (node, error) {
	arity, ok := functions[name.text]
	if !ok {
		return nil, p.errAt(name.pos, "unsupported function or keyword %s", name.text)
	}
	if err := p.expect("("); err != nil {
		return nil, err
	}
	var args []node
	for {
		t := p.peek()
		if name.text == "FILL" && len(args) == 1 && t.kind == tokName {
			return nil, p.errAt(t.pos, "FILL with %s is not supported (only a value)", t.text)
		}
		x, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		args = append(args, x)
		if _, ok := p.accept(","); !ok {
			break
		}
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	if len(args) < arity.min || len(args) > arity.max {
		want := "1 argument"
		switch {
		case arity.max != arity.min:
			want = fmt.Sprintf("%d or %d arguments", arity.min, arity.max)
		case arity.min != 1:
			want = fmt.Sprintf("%d arguments", arity.min)
		}
		return nil, p.errAt(name.pos, "%s takes %s, got %d", name.text, want, len(args))
	}
	return &callNode{fn: name.text, args: args}, nil
}
