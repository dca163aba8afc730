package command

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCollectListsRegularFilesInOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "model.pkl", "12345")
	write(t, dir, "metrics.json", "{}")
	write(t, dir, "plots/roc.svg", "<svg/>")
	write(t, dir, "plots/deep/x y.txt", "z")
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := Collect(dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, fmt.Sprintf("%s:%d", f.Name, f.Size))
		if f.Path != filepath.Join(dir, filepath.FromSlash(f.Name)) {
			t.Errorf("%s: path %s", f.Name, f.Path)
		}
	}
	want := "metrics.json:2 model.pkl:5 plots/deep/x y.txt:1 plots/roc.svg:6"
	if strings.Join(got, " ") != want {
		t.Errorf("files %q, want %q", strings.Join(got, " "), want)
	}
}

// refused asserts err is an *OutputError whose reason has want.
func refused(t *testing.T, err error, want string) {
	t.Helper()
	var oe *OutputError
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v, want an *OutputError", err)
	}
	if !strings.Contains(oe.Reason, want) {
		t.Errorf("reason %q, want it to contain %q", oe.Reason, want)
	}
}

func TestCollectRefuses(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		make func(t *testing.T, dir string)
		lim  Limits
		want string
	}{
		"symlink to /etc/passwd": {func(t *testing.T, dir string) {
			write(t, dir, "ok.txt", "x")
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
				t.Fatal(err)
			}
		}, Limits{}, `"passwd" is a symbolic link (to "/etc/passwd")`},
		"symlink to a directory, nested": {func(t *testing.T, dir string) {
			write(t, dir, "a/ok.txt", "x")
			if err := os.Symlink("/etc", filepath.Join(dir, "a", "etc")); err != nil {
				t.Fatal(err)
			}
		}, Limits{}, `"a/etc" is a symbolic link`},
		"named pipe": {func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, Limits{}, `"fifo" is a named pipe`},
		"too many files": {func(t *testing.T, dir string) {
			for i := range 12 {
				write(t, dir, fmt.Sprintf("f%02d", i), "x")
			}
		}, Limits{MaxFiles: 10}, "more than 10 files"},
		"too many files across directories": {func(t *testing.T, dir string) {
			for i := range 6 {
				write(t, dir, fmt.Sprintf("d%d/a", i), "x")
				write(t, dir, fmt.Sprintf("d%d/b", i), "x")
			}
		}, Limits{MaxFiles: 10}, "more than 10 files"},
		"too many directories": {func(t *testing.T, dir string) {
			for i := range 12 {
				if err := os.Mkdir(filepath.Join(dir, fmt.Sprintf("d%02d", i)), 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}, Limits{MaxFiles: 10}, "more than 10 directories"},
		"too many bytes": {func(t *testing.T, dir string) {
			write(t, dir, "a", strings.Repeat("x", 60))
			write(t, dir, "b", strings.Repeat("x", 60))
		}, Limits{MaxBytes: 100}, "more than 100 bytes"},
		"reserved name":     {func(t *testing.T, dir string) { write(t, dir, "run.json", "{}") }, Limits{}, `"run.json" is reserved`},
		"control character": {func(t *testing.T, dir string) { write(t, dir, "a\nb", "x") }, Limits{}, "control character"},
		"backslash":         {func(t *testing.T, dir string) { write(t, dir, `a\b`, "x") }, Limits{}, "backslash"},
		"invalid UTF-8":     {func(t *testing.T, dir string) { write(t, dir, "sub/\xff", "x") }, Limits{}, `under "sub" is not valid UTF-8`},
		"long name": {func(t *testing.T, dir string) {
			write(t, dir, strings.Repeat("d", 200)+"/"+strings.Repeat("d", 200)+"/"+strings.Repeat("f", 200), "x")
		}, Limits{}, "longer than 512 bytes"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tt.make(t, dir)
			files, err := Collect(dir, tt.lim)
			if files != nil {
				t.Errorf("files %v returned with a refusal", files)
			}
			refused(t, err, tt.want)
		})
	}
}

// A directory of 10,000 files is refused after reading a bounded part of
// it (the default limit is 1,000 files).
func TestCollectTenThousandFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 10000 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Collect(dir, Limits{})
	refused(t, err, fmt.Sprintf("more than %d files", DefaultMaxFiles))
}

// Open refuses a file replaced by a symbolic link after Collect checked it.
func TestOpenDoesNotFollowALinkSwappedIn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "a.txt", "hello")
	files, err := Collect(dir, Limits{})
	if err != nil || len(files) != 1 {
		t.Fatalf("Collect: %v %v", files, err)
	}
	h, err := files[0].Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	h.Close()
	p := filepath.Join(dir, "a.txt")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", p); err != nil {
		t.Fatal(err)
	}
	if h, err := files[0].Open(); err == nil {
		h.Close()
		t.Fatal("Open followed a symbolic link")
	}
}
