package store

import (
	"context"
	"fmt"
	"io"
)

// GetConfig reads the pipeline config at key, reading at most limit+1 bytes
// of it. When versionID is set and s keeps versions (VersionGetter), it reads
// exactly that version, so a later overwrite of the key cannot change what a
// run trains on. A config over limit bytes is refused with a
// *ConfigTooLargeError (it matches ErrTooLarge): S3 refuses it from its
// Content-Length before reading any of it, Dir from the file's size. Other
// stores (test fakes) are read with Get or GetVersion and checked after.
func GetConfig(ctx context.Context, s Store, key, versionID string, limit int64) (Object, error) {
	if cg, ok := s.(configGetter); ok {
		return cg.getConfig(ctx, key, versionID, limit)
	}
	var obj Object
	var err error
	if vg, ok := s.(VersionGetter); ok && versionID != "" {
		obj, err = vg.GetVersion(ctx, key, versionID)
	} else {
		obj, err = s.Get(ctx, key)
	}
	if err != nil {
		return Object{}, err
	}
	if n := int64(len(obj.Body)); n > limit {
		return Object{}, fmt.Errorf("get %s: %w", key, &ConfigTooLargeError{Size: n, Limit: limit, VersionID: obj.VersionID, ETag: obj.ETag})
	}
	return obj, nil
}

// configGetter is implemented by the stores of this package, which stop
// reading a config at its limit.
type configGetter interface {
	// getConfig is GetConfig for this store. Stores without versions
	// ignore versionID.
	getConfig(ctx context.Context, key, versionID string, limit int64) (Object, error)
}

// ConfigTooLargeError is GetConfig's error for a config over its limit. It
// matches ErrTooLarge and carries the identity the store reported for the
// object, so that a caller can still name the upload it refused unread.
type ConfigTooLargeError struct {
	// Size is the config's size in bytes, or -1 when only "more than
	// Limit" is known.
	Size int64
	// Limit is the limit it is over.
	Limit int64
	// VersionID and ETag are the object's, as Object has them; either may
	// be empty.
	VersionID, ETag string
}

// Error says "config is N bytes, limit is M".
func (e *ConfigTooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("config is more than %d bytes, limit is %d", e.Limit, e.Limit)
	}
	return fmt.Sprintf("config is %d bytes, limit is %d", e.Size, e.Limit)
}

// Is makes the error match ErrTooLarge.
func (e *ConfigTooLargeError) Is(target error) bool { return target == ErrTooLarge }

// readConfig reads a config body of size bytes (-1: unknown) under limit:
// refused unread when size says it is too large, otherwise read up to
// limit+1 bytes, which is one more than it may have. A refusal is a
// *ConfigTooLargeError without identity; the caller adds it.
func readConfig(r io.Reader, size, limit int64) ([]byte, error) {
	if size > limit {
		return nil, &ConfigTooLargeError{Size: size, Limit: limit}
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, &ConfigTooLargeError{Size: -1, Limit: limit}
	}
	return body, nil
}
