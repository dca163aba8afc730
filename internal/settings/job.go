package settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/edp-pipelines/edp/internal/names"
)

// Limits of the job keys' values.
const (
	// MaxJobOutputBytes is the most edp:jobMaxOutputBytes allows: the
	// 20 GiB of ephemeral storage a Fargate task has by default, which the
	// outputs of a run must fit.
	MaxJobOutputBytes = 20 << 30
	// MaxCommandArgs and MaxCommandBytes bound edp:jobCommand and
	// edp:jobValidateCommand: each travels as one environment variable of
	// the task definition, which should stay small.
	MaxCommandArgs  = 64
	MaxCommandBytes = 4096
	// MaxReadPrefixes and MaxReadBuckets bound the lists the task role's
	// read grants are made of.
	MaxReadPrefixes = 10
	MaxReadBuckets  = 10
)

const commandWant = `a command as a JSON array of strings such as ["python3", "./train.py"]`

// listRule is a key whose value is a list of strings: a JSON array in
// cdk.json or a job file, or a string holding a JSON array (what `-c
// key=value` gives). With commaSeparated, a string that is not a JSON
// array is split at commas.
type listRule struct {
	key            string
	field          func(*Settings) *[]string
	def            []string // nil: unset by default
	want           string
	commaSeparated bool
	// allow returns nil for an allowed list (nil is unset), otherwise a
	// reason that follows the message.
	allow func([]string) error
}

func (r listRule) name() string { return r.key }

func (r listRule) setDefault(s *Settings) {
	if p := r.field(s); *p == nil && r.def != nil {
		*p = slices.Clone(r.def)
	}
}

func (r listRule) isDefault(s Settings) bool {
	v := *r.field(&s)
	if r.def == nil {
		return v == nil
	}
	return slices.Equal(v, r.def)
}

func (r listRule) read(s *Settings, v any) error {
	list, ok := r.parse(v)
	if !ok {
		return problem(r.key, r.want, show(v))
	}
	*r.field(s) = list
	return nil
}

// parse reads a list from a context value; a non-nil result even when
// empty, so that an explicit empty list is not taken for unset.
func (r listRule) parse(v any) ([]string, bool) {
	switch x := v.(type) {
	case []string:
		return append([]string{}, x...), true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			str, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, str)
		}
		return out, true
	case string:
		t := strings.TrimSpace(x)
		if strings.HasPrefix(t, "[") {
			out := []string{}
			if err := json.Unmarshal([]byte(t), &out); err != nil || out == nil {
				return nil, false
			}
			return out, true
		}
		if !r.commaSeparated {
			return nil, false
		}
		out := []string{}
		for _, part := range strings.Split(t, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
		return out, true
	}
	return nil, false
}

func (r listRule) check(s Settings) error {
	v := *r.field(&s)
	if err := r.allow(v); err != nil {
		return fmt.Errorf("%w: %w", problem(r.key, r.want, showList(v)), err)
	}
	return nil
}

func showList(v []string) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

// command allows an unset command (nil) and an argv that can be executed:
// not empty, a program name, no NUL byte, and small enough for one
// environment variable.
func command(argv []string) error {
	switch {
	case argv == nil:
		return nil
	case len(argv) == 0:
		return errors.New("the command is empty")
	case strings.TrimSpace(argv[0]) == "":
		return errors.New("the program (the first element) is empty")
	case len(argv) > MaxCommandArgs:
		return fmt.Errorf("%d arguments, more than %d", len(argv), MaxCommandArgs)
	}
	for i, a := range argv {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("element %d holds a NUL byte", i)
		}
	}
	if n := len(showList(argv)); n > MaxCommandBytes {
		return fmt.Errorf("%d bytes as JSON, more than %d", n, MaxCommandBytes)
	}
	return nil
}

// prefixRe is a key prefix of safe S3 characters only, one or more
// non-empty segments, ending in "/". IAM's wildcards (* ?) and policy
// variables (${...}) cannot appear, so a prefix grants exactly its keys.
var prefixRe = regexp.MustCompile(`^[A-Za-z0-9!_.'()-]+(/[A-Za-z0-9!_.'()-]+)*/$`)

// readPrefixes allows up to MaxReadPrefixes distinct prefixes. Any prefix of
// the bucket may be read, including configs/, artifacts/ and runs/ (which
// the task reads anyway): the grants are read-only. The whole bucket ("" or
// "/") may not.
func readPrefixes(list []string) error {
	if len(list) > MaxReadPrefixes {
		return fmt.Errorf("%d prefixes, more than %d", len(list), MaxReadPrefixes)
	}
	for i, p := range list {
		switch {
		case slices.Contains(list[:i], p):
			return fmt.Errorf("%q twice", p)
		case p == "" || p == "/":
			return errors.New("the whole bucket cannot be granted: name a prefix such as \"data/\"")
		case len(p) > 256:
			return fmt.Errorf("prefix %q longer than 256 bytes", p)
		case !strings.HasSuffix(p, "/"):
			return fmt.Errorf("prefix %q does not end in \"/\"", p)
		case !prefixRe.MatchString(p):
			return fmt.Errorf("prefix %q: segments of letters, digits and ! _ . ' ( ) - only, none empty, none leading \"/\"", p)
		}
	}
	return nil
}

var (
	bucketRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	bucketIPRe = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$`)
)

// readBuckets allows up to MaxReadBuckets distinct names that follow S3's
// bucket naming rules for general purpose buckets.
func readBuckets(list []string) error {
	if len(list) > MaxReadBuckets {
		return fmt.Errorf("%d buckets, more than %d", len(list), MaxReadBuckets)
	}
	for i, b := range list {
		if slices.Contains(list[:i], b) {
			return fmt.Errorf("%q twice", b)
		}
		if err := bucketName(b); err != nil {
			return fmt.Errorf("%q is not a bucket name: %w", b, err)
		}
	}
	return nil
}

func bucketName(b string) error {
	switch {
	case !bucketRe.MatchString(b):
		return errors.New("3 to 63 lower-case letters, digits, dots and hyphens, beginning and ending with a letter or digit")
	case strings.Contains(b, ".."):
		return errors.New("two adjacent dots")
	case bucketIPRe.MatchString(b):
		return errors.New("formatted as an IP address")
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(b, p) {
			return fmt.Errorf("begins with the reserved %q", p)
		}
	}
	for _, suf := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3"} {
		if strings.HasSuffix(b, suf) {
			return fmt.Errorf("ends with the reserved %q", suf)
		}
	}
	return nil
}

// jobDir allows "" (unset) and a directory that holds a Dockerfile.
func jobDir(v string) error {
	if v == "" {
		return nil
	}
	fi, err := os.Stat(v)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errors.New("no such directory")
	case err != nil:
		return err
	case !fi.IsDir():
		return errors.New("not a directory")
	}
	df, err := os.Stat(filepath.Join(v, "Dockerfile"))
	if err != nil || !df.Mode().IsRegular() {
		return errors.New("the directory holds no Dockerfile")
	}
	return nil
}

// jobChecks are the rules between edp:job and the other job keys: a
// command job needs its directory and its command; the Iris job uses none
// of the others, so a value other than the default is a mistake.
func jobChecks() []crossCheck {
	out := []crossCheck{
		required(KeyJobDir, func(s Settings) bool { return s.JobDir != "" }),
		required(KeyJobCommand, func(s Settings) bool { return s.JobCommand != nil }),
		// At the job timeout the consumer stops extending the message's
		// visibility, which was last extended at most half a visibility
		// timeout before: the kill grace must end before the message
		// reappears, or a second task would start the run while the first
		// still stops it.
		{[]string{KeyJobKillGraceSeconds, KeyVisibilityTimeout}, func(s Settings) error {
			if s.Job == names.JobCommand && 2*s.JobKillGraceSeconds >= s.VisibilityTimeoutSeconds {
				return fmt.Errorf("%w: context key %q: %d s must be less than half of %s (%d s): at the job timeout the message stays hidden only that long",
					ErrInvalid, KeyJobKillGraceSeconds, s.JobKillGraceSeconds, KeyVisibilityTimeout, s.VisibilityTimeoutSeconds)
			}
			return nil
		}},
	}
	for _, r := range rules {
		if r.name() == KeyJob || !strings.HasPrefix(r.name(), KeyJob) {
			continue
		}
		out = append(out, crossCheck{[]string{KeyJob, r.name()}, func(s Settings) error {
			if s.Job == names.JobIris && !r.isDefault(s) {
				return fmt.Errorf("%w: context key %q is only used with %s=%s (got %s=%s)",
					ErrInvalid, r.name(), KeyJob, names.JobCommand, KeyJob, s.Job)
			}
			return nil
		}})
	}
	return out
}

func required(key string, set func(Settings) bool) crossCheck {
	return crossCheck{[]string{KeyJob, key}, func(s Settings) error {
		if s.Job == names.JobCommand && !set(s) {
			return fmt.Errorf("%w: context key %q is required when %s=%s", ErrInvalid, key, KeyJob, names.JobCommand)
		}
		return nil
	}}
}

// ErrJobFile is wrapped by every problem of a job directory's
// names.JobContextFile.
var ErrJobFile = errors.New("invalid job file")

// WithJobFile returns get layered over the job file of the job directory
// get names (edp:jobDir): a key get does not set is looked up in the
// directory's names.JobContextFile, so `-c edp:jobDir=DIR` is all a
// deploy needs, and context given explicitly wins. Without edp:jobDir, or
// without the file, it returns get. The file must be a JSON object whose
// keys are job keys other than edp:jobDir (a job file cannot move the job,
// nor change the stack around it).
func WithJobFile(get Lookup) (Lookup, error) {
	dir, ok := get(KeyJobDir).(string)
	if !ok || strings.TrimSpace(dir) == "" {
		return get, nil
	}
	path := filepath.Join(strings.TrimSpace(dir), names.JobContextFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return get, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrJobFile, path, err)
	}
	file, err := ParseJobFile(raw)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrJobFile, path, err)
	}
	return func(key string) any {
		if v := get(key); v != nil {
			return v
		}
		return file[key]
	}, nil
}

// ParseJobFile reads the context keys of a job file: a JSON object of job
// keys (edp:job and the edp:job* keys FromContext reads), not edp:jobDir.
func ParseJobFile(raw []byte) (map[string]any, error) {
	var file map[string]any
	if err := json.Unmarshal(raw, &file); err != nil {
		return nil, fmt.Errorf("not a JSON object of context keys: %w", err)
	}
	if file == nil {
		return nil, errors.New("not a JSON object of context keys")
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(file)) {
		switch {
		case k == KeyJobDir:
			errs = append(errs, fmt.Errorf("key %q: a job file cannot name the job directory", k))
		case !strings.HasPrefix(k, KeyJob):
			errs = append(errs, fmt.Errorf("key %q: a job file holds job keys only (%s, %s*); set the others with -c or in cdk.json", k, KeyJob, KeyJob))
		case !slices.Contains(Keys(), k):
			errs = append(errs, fmt.Errorf("key %q: no such key (see docs/configuration.md)", k))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return file, nil
}
