package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Dir is a Store over a local directory: key "a/b.json" is file
// <root>/a/b.json. Put creates missing directories and replaces files
// atomically (write to a temporary file, then rename), so a reader never sees
// a half-written artifact.
type Dir struct {
	root string
}

// NewDir returns a local filesystem store rooted at root (created on Put).
func NewDir(root string) *Dir { return &Dir{root: root} }

// Root returns the directory the store is rooted at.
func (d *Dir) Root() string { return d.root }

// Path returns the file path key maps to, or an error if key would escape
// the root.
func (d *Dir) Path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// checkKey rejects keys that are not clean relative slash paths: the store
// must never read or write outside its root, whatever a key contains.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, `\`) || strings.ContainsRune(key, 0) {
		return fmt.Errorf("invalid key %q", key)
	}
	if path.Clean(key) != strings.TrimSuffix(key, "/") || key == "." || strings.HasPrefix(key, "../") || key == ".." {
		return fmt.Errorf("invalid key %q", key)
	}
	return nil
}

// open opens the file of key; the caller closes it.
func (d *Dir) open(ctx context.Context, key string) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := d.Path(key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return f, nil
}

// Get implements Store.
func (d *Dir) Get(ctx context.Context, key string) (Object, error) {
	f, err := d.open(ctx, key)
	if err != nil {
		return Object{}, err
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, MaxObjectBytes+1))
	if err != nil {
		return Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	if len(body) > MaxObjectBytes {
		return Object{}, fmt.Errorf("get %s: %w (more than %d bytes)", key, ErrTooLarge, MaxObjectBytes)
	}
	return Object{Body: body, ETag: etag(body)}, nil
}

// getConfig implements configGetter: a file larger than limit is refused
// from its size without being read into memory. Its ETag, which S3 would
// send in a header, is computed by streaming the file through MD5, in
// constant memory. A directory keeps no versions, so versionID is ignored.
func (d *Dir) getConfig(ctx context.Context, key, _ string, limit int64) (Object, error) {
	f, err := d.open(ctx, key)
	if err != nil {
		return Object{}, err
	}
	defer f.Close()
	size := int64(-1)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	body, err := readConfig(f, size, limit)
	if big := (*ConfigTooLargeError)(nil); errors.As(err, &big) {
		big.ETag = streamETag(f)
	}
	if err != nil {
		return Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	return Object{Body: body, ETag: etag(body)}, nil
}

// streamETag is etag of the whole file f, read from its start in constant
// memory; "" if it cannot be read.
func streamETag(f *os.File) string {
	h := md5.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ""
	}
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return `"` + hex.EncodeToString(h.Sum(nil)) + `"`
}

// etag is S3's ETag of a single-part upload of body: its quoted hex MD5.
func etag(body []byte) string {
	sum := md5.Sum(body)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// Put implements Store. contentType is not recorded on a filesystem.
func (d *Dir) Put(ctx context.Context, key string, body []byte, _ string) error {
	return d.put(ctx, key, bytes.NewReader(body))
}

// PutFile implements FilePutter: the file's first size bytes, copied.
func (d *Dir) PutFile(ctx context.Context, key string, f *os.File, size int64, _ string) error {
	return d.put(ctx, key, io.NewSectionReader(f, 0, size))
}

// put writes r to key through a temporary file renamed into place, so a
// reader never sees a partial object.
func (d *Dir) put(ctx context.Context, key string, r io.Reader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := d.Path(key)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	_, werr := io.Copy(tmp, r)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}
