// Package store is the flat key space a pipeline job reads configs from and
// writes artifacts and run records to: an S3 bucket (S3) or a local directory
// (Dir), behind one small interface.
//
// Keys are slash-separated and relative ("artifacts/rf-v2/model.json"). Get
// reports a missing key with an error matching ErrNotFound and refuses
// objects larger than MaxObjectBytes with an error matching ErrTooLarge, so
// callers can tell permanent problems from transient ones with errors.Is.
// GetConfig reads a config, which has a much smaller limit, and reads no more
// of it than that limit plus one byte.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MaxObjectBytes bounds what Get reads into memory. Configs are read with
// GetConfig under their own, far smaller limit; nothing else the pipeline
// reads (its own run records) comes close to this.
const MaxObjectBytes = 16 << 20

// ErrNotFound is matched (errors.Is) by the error Get returns for a missing key.
var ErrNotFound = errors.New("object not found")

// ErrTooLarge is matched by the error Get returns for an object larger than
// MaxObjectBytes, and GetConfig for a config larger than its limit.
var ErrTooLarge = errors.New("object too large")

// Store is a flat key space of objects (an S3 bucket or a local directory).
type Store interface {
	// Get returns the object's bytes and identity. A missing key returns an
	// error for which errors.Is(err, ErrNotFound) is true.
	Get(ctx context.Context, key string) (Object, error)
	// Put writes (overwrites) an object.
	Put(ctx context.Context, key string, body []byte, contentType string) error
}

// FilePutter is implemented by stores that upload a file without reading
// it into memory (S3, Dir): a command job's outputs can be far larger than
// anything else the consumer writes. PutFileOf uses it when it can.
type FilePutter interface {
	// PutFile writes (overwrites) key with the first size bytes of f.
	PutFile(ctx context.Context, key string, f *os.File, size int64, contentType string) error
}

// PutFileOf writes the first size bytes of f to key: streamed when s is a
// FilePutter, else read into memory and Put (test fakes).
func PutFileOf(ctx context.Context, s Store, key string, f *os.File, size int64, contentType string) error {
	if fp, ok := s.(FilePutter); ok {
		return fp.PutFile(ctx, key, f, size, contentType)
	}
	body := make([]byte, size)
	if _, err := f.ReadAt(body, 0); err != nil {
		return fmt.Errorf("put %s: read %s: %w", key, f.Name(), err)
	}
	return s.Put(ctx, key, body, contentType)
}

// VersionGetter is implemented by stores that keep object versions (S3).
// A job triggered by an event naming a version reads exactly that version,
// so a later overwrite of the key cannot change what the run trains on.
type VersionGetter interface {
	// GetVersion is Get for one version of key. A missing key or version
	// returns an error matching ErrNotFound.
	GetVersion(ctx context.Context, key, versionID string) (Object, error)
}

// Object is one stored object.
type Object struct {
	// Body is the whole content.
	Body []byte
	// VersionID is the S3 version id; empty for unversioned buckets and Dir.
	VersionID string
	// ETag is S3's entity tag as returned (quoted); Dir computes the same
	// form (the quoted hex MD5 of the content, as S3 does for single-part
	// uploads).
	ETag string
}

// Location is a parsed object or folder address: either S3 (Bucket set) or a
// local filesystem path (Path set).
type Location struct {
	// Bucket is the S3 bucket; empty for a local path.
	Bucket string
	// Key is the S3 key or key prefix (may be empty: the bucket root).
	Key string
	// Path is the local path; empty for S3.
	Path string
}

// IsS3 reports whether l names an S3 location.
func (l Location) IsS3() bool { return l.Bucket != "" }

// ParseURL splits "s3://bucket/key" into bucket and key; anything without the
// s3:// scheme is a local path. Other schemes are rejected so a typo such as
// "s3:/b/k" or "https://..." is not silently treated as a local file name.
func ParseURL(raw string) (Location, error) {
	if raw == "" {
		return Location{}, errors.New("parse location: empty")
	}
	if rest, ok := strings.CutPrefix(raw, "s3://"); ok {
		bucket, key, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return Location{}, fmt.Errorf("parse location %q: missing bucket", raw)
		}
		return Location{Bucket: bucket, Key: key}, nil
	}
	if i := strings.Index(raw, "://"); i > 0 && !strings.ContainsAny(raw[:i], `/\`) {
		return Location{}, fmt.Errorf("parse location %q: unsupported scheme %q (use s3:// or a local path)", raw, raw[:i])
	}
	if strings.HasPrefix(raw, "s3:") {
		return Location{}, fmt.Errorf("parse location %q: malformed s3 URL (want s3://bucket/key)", raw)
	}
	return Location{Path: raw}, nil
}
