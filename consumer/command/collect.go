package command

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/edp-pipelines/edp/internal/textlimit"
)

// Defaults of Limits fields left at their zero value.
const (
	DefaultMaxFiles = 1000
	DefaultMaxBytes = 1 << 30
)

// Limits bound what one run may publish.
type Limits struct {
	// MaxFiles bounds the regular files, and separately the directories,
	// of the output directory. Default DefaultMaxFiles.
	MaxFiles int
	// MaxBytes bounds the files' total size. Default DefaultMaxBytes.
	MaxBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}

// Limits on names, which become parts of S3 keys (at most 1024 bytes).
const (
	maxNameBytes = 512
	maxDepth     = 32
	// MaxFileBytes is the largest file one PutObject takes (5 GiB).
	MaxFileBytes = 5 << 30
)

// ReservedNames are the names a job may not publish at the top of its
// output: edp writes them into the run's folder itself.
var ReservedNames = []string{"run.json"}

// File is one output file to publish.
type File struct {
	// Name is its path under the output directory, slash-separated: the
	// rest of its key after the run's folder.
	Name string
	// Path is where it is on disk.
	Path string
	// Size is its size in bytes when collected.
	Size int64
}

// OutputError is a refused output directory: the run fails permanently
// with Reason (a retry would produce the same output).
type OutputError struct {
	Reason string
}

func (e *OutputError) Error() string { return "output refused: " + e.Reason }

func refuse(format string, args ...any) error {
	return &OutputError{Reason: fmt.Sprintf(format, args...)}
}

// Collect lists the files of the output directory dir, checking them
// before anything is read: only regular files and directories (a symbolic
// link, device, pipe or socket is refused, never followed), names that are
// safe as keys, at most lim.MaxFiles files and as many directories, at
// most lim.MaxBytes in all. It stops at the first violation, so a
// directory of a million files costs MaxFiles+1 entries, not a million.
// Files are in lexical order of their names.
func Collect(dir string, lim Limits) ([]File, error) {
	lim = lim.withDefaults()
	c := &collector{lim: lim}
	if err := c.walk(dir, "", 0); err != nil {
		return nil, err
	}
	return c.files, nil
}

type collector struct {
	lim   Limits
	files []File
	dirs  int
	bytes int64
}

func (c *collector) walk(dir, prefix string, depth int) error {
	if depth > maxDepth {
		return refuse("directory %q is nested more than %d deep", prefix, maxDepth)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("read output directory: %w", err)
	}
	defer f.Close()
	// Read in batches so that an enormous directory is refused after
	// MaxFiles+1 entries instead of being listed whole.
	var entries []fs.DirEntry
	for {
		batch, err := f.ReadDir(256)
		entries = append(entries, batch...)
		if len(entries) > 2*c.lim.MaxFiles+1 {
			return refuse("more than %d files in the output directory", c.lim.MaxFiles)
		}
		if errors.Is(err, io.EOF) || len(batch) == 0 {
			break
		}
		if err != nil {
			return fmt.Errorf("read output directory: %w", err)
		}
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range entries {
		name := e.Name()
		rel := name
		if prefix != "" {
			rel = prefix + "/" + name
		}
		if err := checkName(name, rel, depth); err != nil {
			return err
		}
		full := filepath.Join(dir, name)
		switch t := e.Type(); {
		case t&fs.ModeSymlink != 0:
			target, _ := os.Readlink(full)
			return refuse("%q is a symbolic link (to %q): only regular files are published", rel, textlimit.Clip(target, 200))
		case t.IsDir():
			c.dirs++
			if c.dirs > c.lim.MaxFiles {
				return refuse("more than %d directories in the output directory", c.lim.MaxFiles)
			}
			if err := c.walk(full, rel, depth+1); err != nil {
				return err
			}
		case t.IsRegular():
			info, err := e.Info()
			if err != nil {
				return fmt.Errorf("output %q: %w", rel, err)
			}
			if len(c.files) == c.lim.MaxFiles {
				return refuse("more than %d files in the output directory", c.lim.MaxFiles)
			}
			if info.Size() > MaxFileBytes {
				return refuse("%q is larger than %d bytes, the most one upload takes", rel, int64(MaxFileBytes))
			}
			c.bytes += info.Size()
			if c.bytes > c.lim.MaxBytes {
				return refuse("more than %d bytes in the output directory (at %q)", c.lim.MaxBytes, rel)
			}
			c.files = append(c.files, File{Name: rel, Path: full, Size: info.Size()})
		default:
			return refuse("%q is a %s: only regular files are published", rel, kind(t))
		}
	}
	return nil
}

// checkName refuses a name that is not safe as part of a key: invalid
// UTF-8, control characters, backslashes, too long, or reserved.
func checkName(name, rel string, depth int) error {
	switch {
	case !utf8.ValidString(name):
		return refuse("a name under %q is not valid UTF-8", path.Dir(rel))
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		return refuse("%q has a control character or a backslash in its name", textlimit.Clip(rel, 200))
	case len(rel) > maxNameBytes:
		return refuse("%q is longer than %d bytes", textlimit.Clip(rel, 200), maxNameBytes)
	case depth == 0:
		for _, r := range ReservedNames {
			if name == r {
				return refuse("%q is reserved: edp writes it", name)
			}
		}
	}
	return nil
}

func kind(t fs.FileMode) string {
	switch {
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	default:
		return "special file"
	}
}

// Open opens a collected file for upload without following a symbolic
// link, and checks that it is still the regular file of its size.
func (f File) Open() (*os.File, error) {
	h, err := os.OpenFile(f.Path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open output %q: %w", f.Name, err)
	}
	info, err := h.Stat()
	if err != nil || !info.Mode().IsRegular() || info.Size() != f.Size {
		h.Close()
		return nil, refuse("%q changed after it was checked", f.Name)
	}
	return h, nil
}
