package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// A section is the table of one config section, parsed into S: every key
// it allows, in the order messages list them, each with how its value is
// checked and stored and its default. The allowed-key check and the parsing
// are both driven by it.
type section[S any] struct {
	keys []key[S]
	// nullable accepts null for the whole section: every key its default.
	nullable bool
	// params marks model.params, whose keys depend on the model type and
	// are named "<model type> parameter"s in messages.
	params bool
	// after, if set, checks what no single key can, once all are parsed.
	after func(p *parser, path string, s *S)
}

// A key is one key of a section parsed into S.
type key[S any] struct {
	name string
	// model, when set, is the only model type that has the key.
	model string
	// hidden keys are accepted but not listed among the allowed ones:
	// scikit-learn parameters edp accepts only with their default.
	hidden bool
	// required, when set, makes an absent key a problem:
	// "required: <required>".
	required string
	// last keys are parsed after the others (and after the check for
	// required keys), when their parsing depends on other keys; parse is
	// then called with a nil v when the key is absent.
	last bool
	// def stores the key's default in s; nil when it has none.
	def func(s *S)
	// parse checks v and stores it in s, reporting problems to p.
	parse func(p *parser, path string, s *S, v *yaml.Node)
}

// value is a key stored in the field of S that at returns: conv converts
// an allowed value (ok false for any other), want says what is allowed,
// for "must be <want>, got <value>", and def is the default.
func value[S, V any](name string, at func(*S) *V, def V, conv func(*yaml.Node) (V, bool), want string) key[S] {
	return key[S]{
		name: name,
		def:  func(s *S) { *at(s) = def },
		parse: func(p *parser, path string, s *S, v *yaml.Node) {
			x, ok := conv(v)
			if !ok {
				p.fail(path, "must be %s, got %s", want, describe(v))
				return
			}
			*at(s) = x
		},
	}
}

// ignored is a key edp accepts and ignores; ok tells the values allowed,
// want describes them.
func ignored[S any](name string, ok func(*yaml.Node) bool, want string) key[S] {
	return key[S]{
		name: name,
		parse: func(p *parser, path string, _ *S, v *yaml.Node) {
			if !ok(v) {
				p.fail(path, "must be %s, got %s", want, describe(v))
			}
		},
	}
}

// subsection is a key holding the section sec, parsed into the field of S
// that at returns.
func subsection[S, T any](name string, sec section[T], at func(*S) *T) key[S] {
	return key[S]{
		name: name,
		def:  func(s *S) { sec.defaults(at(s), "") },
		parse: func(p *parser, path string, s *S, v *yaml.Node) {
			if v != nil {
				parseSection(p, path, v, sec, "", at(s))
			}
		},
	}
}

// nullIsDefault makes null mean the key's default.
func (k key[S]) nullIsDefault() key[S] {
	parse := k.parse
	k.parse = func(p *parser, path string, s *S, v *yaml.Node) {
		if isNull(v) {
			k.def(s)
			return
		}
		parse(p, path, s, v)
	}
	return k
}

// only limits the key to one model type.
func (k key[S]) only(model string) key[S] {
	k.model = model
	return k
}

// requiredAs makes the key required; what says what it must hold.
func (k key[S]) requiredAs(what string) key[S] {
	k.required = what
	return k
}

// parsedLast marks the key as parsed after the others.
func (k key[S]) parsedLast() key[S] {
	k.last = true
	return k
}

// defaults stores the default of every key of model (any model when "")
// in s.
func (sec section[S]) defaults(s *S, model string) {
	for _, k := range sec.keys {
		if k.def != nil && k.of(model) {
			k.def(s)
		}
	}
}

// of reports whether model has the key ("" has every key not limited to
// a model).
func (k key[S]) of(model string) bool { return k.model == "" || k.model == model }

// lookup returns the key name of model.
func (sec section[S]) lookup(name, model string) (key[S], bool) {
	for _, k := range sec.keys {
		if k.name == name && k.of(model) {
			return k, true
		}
	}
	return key[S]{}, false
}

// allowed lists the keys of model that messages name, in table order.
func (sec section[S]) allowed(model string) []string {
	var names []string
	for _, k := range sec.keys {
		if !k.hidden && k.of(model) {
			names = append(names, k.name)
		}
	}
	return names
}

// unknown reports a key that model's section does not have.
func (sec section[S]) unknown(p *parser, path, name, model string) {
	if !sec.params {
		p.fail(path, "unknown key (allowed: %s)", strings.Join(sec.allowed(model), ", "))
		return
	}
	for _, k := range sec.keys {
		if k.name == name {
			p.fail(path, "not a %s parameter (it belongs to %s)", model, k.model)
			return
		}
	}
	p.fail(path, "unknown %s parameter (allowed: %s)", model, strings.Join(sec.allowed(model), ", "))
}

// parseSection parses the mapping n at path into s by the table sec, for
// the model type model (params only): each key in document order, reporting
// unknown keys; then absent required keys; then the keys parsed last; then
// sec.after. Defaults must already be in s.
func parseSection[S any](p *parser, path string, n *yaml.Node, sec section[S], model string, s *S) {
	fields, ok := p.mapping(path, n, sec.nullable)
	if !ok {
		return
	}
	given := map[string]*yaml.Node{}
	for _, f := range fields {
		given[f.key] = f.value
		k, ok := sec.lookup(f.key, model)
		switch {
		case !ok:
			sec.unknown(p, join(path, f.key), f.key, model)
		case !k.last:
			k.parse(p, join(path, f.key), s, f.value)
		}
	}
	for _, k := range sec.keys {
		if _, ok := given[k.name]; !ok && k.required != "" && k.of(model) {
			p.fail(join(path, k.name), "required: %s", k.required)
		}
	}
	for _, k := range sec.keys {
		if k.last && k.of(model) {
			k.parse(p, join(path, k.name), s, given[k.name])
		}
	}
	if sec.after != nil {
		sec.after(p, path, s)
	}
}
