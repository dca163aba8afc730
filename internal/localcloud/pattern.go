package localcloud

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// MatchPattern reports whether an event matches an EventBridge event
// pattern. It supports what rules on S3 events use: exact values, and the
// prefix, suffix, wildcard, anything-but and exists filters. (moto routes
// events with wildcard patterns, but its TestEventPattern does not match
// them, so the local runtime matches rules itself.)
func MatchPattern(pattern string, event []byte) (bool, error) {
	var p map[string]any
	if err := json.Unmarshal([]byte(pattern), &p); err != nil {
		return false, fmt.Errorf("event pattern is not a JSON object: %w", err)
	}
	var e map[string]any
	if err := json.Unmarshal(event, &e); err != nil {
		return false, fmt.Errorf("event is not a JSON object: %w", err)
	}
	return matchObject(p, e)
}

func matchObject(p, e map[string]any) (bool, error) {
	for k, want := range p {
		got, present := e[k]
		switch w := want.(type) {
		case map[string]any:
			sub, _ := got.(map[string]any)
			if ok, err := matchObject(w, sub); !ok || err != nil {
				return false, err
			}
		case []any:
			ok, err := matchValues(w, got, present)
			if !ok || err != nil {
				return false, err
			}
		default:
			return false, fmt.Errorf("pattern field %q: want an object or an array, got %v", k, want)
		}
	}
	return true, nil
}

// matchValues matches one event field against a pattern's list of
// alternatives (any may match).
func matchValues(alternatives []any, got any, present bool) (bool, error) {
	values := []any{got}
	if arr, ok := got.([]any); ok {
		values = arr
	}
	for _, alt := range alternatives {
		for _, v := range values {
			ok, err := matchOne(alt, v, present)
			if err != nil || ok {
				return ok, err
			}
		}
	}
	return false, nil
}

func matchOne(alt, v any, present bool) (bool, error) {
	f, isFilter := alt.(map[string]any)
	if !isFilter {
		return present && alt == v, nil
	}
	for op, arg := range f {
		s, isStr := v.(string)
		switch op {
		case "prefix":
			return present && isStr && strings.HasPrefix(s, fmt.Sprint(arg)), nil
		case "suffix":
			return present && isStr && strings.HasSuffix(s, fmt.Sprint(arg)), nil
		case "wildcard":
			re := "^" + strings.ReplaceAll(regexp.QuoteMeta(fmt.Sprint(arg)), `\*`, ".*") + "$"
			return present && isStr && regexp.MustCompile(re).MatchString(s), nil
		case "exists":
			return present == (arg == true), nil
		case "anything-but":
			if !present {
				return false, nil
			}
			for _, x := range anyList(arg) {
				if x == v {
					return false, nil
				}
			}
			return true, nil
		default:
			return false, fmt.Errorf("event pattern filter %q is not supported locally", op)
		}
	}
	return false, nil
}

func anyList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}
