package store

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// configLimit is the config package's limit (64 KiB), spelled out: store
// does not import config.
const configLimit = 64 << 10

// sizedS3 serves every GetObject with an object of size bytes whose body
// counts the bytes read from it, and remembers the last request.
type sizedS3 struct {
	size int64
	// contentLength is what the response claims; nil: not sent.
	contentLength   *int64
	versionID, etag string

	read   atomic.Int64
	closed atomic.Int64
	mu     sync.Mutex
	last   *s3.GetObjectInput
}

func (f *sizedS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	f.last = in
	f.mu.Unlock()
	out := &s3.GetObjectOutput{Body: &countedBody{left: f.size, s: f}, ContentLength: f.contentLength, ETag: aws.String(f.etag)}
	if f.versionID != "" {
		out.VersionId = aws.String(f.versionID)
	}
	return out, nil
}

func (f *sizedS3) PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return nil, errors.New("sizedS3 is read-only")
}

// countedBody yields left bytes of '#' (a YAML comment), counting them into
// s.read.
type countedBody struct {
	left int64
	s    *sizedS3
}

func (b *countedBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.left)
	for i := range n {
		p[i] = '#'
	}
	b.left -= n
	b.s.read.Add(n)
	return int(n), nil
}

func (b *countedBody) Close() error {
	b.s.closed.Add(1)
	return nil
}

func TestGetConfigS3ReadsAtMostLimitPlusOne(t *testing.T) {
	t.Parallel()
	const big = 16 << 20
	tests := []struct {
		name          string
		size          int64
		contentLength *int64
		wantRead      int64
		wantErr       string // "" = accepted
	}{
		{"16 MiB, length sent", big, aws.Int64(big), 0, "config is 16777216 bytes, limit is 65536"},
		{"16 MiB, no length", big, nil, configLimit + 1, "config is more than 65536 bytes, limit is 65536"},
		{"16 MiB, length understated", big, aws.Int64(100), configLimit + 1, "config is more than 65536 bytes"},
		{"one byte over", configLimit + 1, aws.Int64(configLimit + 1), 0, "config is 65537 bytes, limit is 65536"},
		{"at the limit", configLimit, aws.Int64(configLimit), configLimit, ""},
		{"at the limit, no length", configLimit, nil, configLimit, ""},
		{"empty", 0, aws.Int64(0), 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := &sizedS3{size: tt.size, contentLength: tt.contentLength, versionID: "v7", etag: `"e"`}
			obj, err := GetConfig(context.Background(), NewS3(fake, "b"), "configs/a.yaml", "v7", configLimit)
			if got := fake.read.Load(); got != tt.wantRead {
				t.Errorf("read %d bytes of the %d-byte body, want %d", got, tt.size, tt.wantRead)
			}
			if fake.closed.Load() != 1 {
				t.Errorf("body closed %d times, want 1", fake.closed.Load())
			}
			if v := aws.ToString(fake.last.VersionId); v != "v7" {
				t.Errorf("GetObject VersionId = %q, want v7", v)
			}
			if tt.wantErr == "" {
				if err != nil || int64(len(obj.Body)) != tt.size || obj.VersionID != "v7" || obj.ETag != `"e"` {
					t.Fatalf("GetConfig = %d bytes (version %q, etag %q), %v; want %d bytes, v7, \"e\"", len(obj.Body), obj.VersionID, obj.ETag, err, tt.size)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("GetConfig error = %v, want ErrTooLarge saying %q", err, tt.wantErr)
			}
			var tooLarge *ConfigTooLargeError
			if !errors.As(err, &tooLarge) || tooLarge.VersionID != "v7" || tooLarge.ETag != `"e"` {
				t.Errorf("error %#v does not carry the object's version and ETag", tooLarge)
			}
		})
	}
}

func TestGetConfigS3CurrentVersion(t *testing.T) {
	t.Parallel()
	fake := &sizedS3{size: 10, contentLength: aws.Int64(10)}
	if _, err := GetConfig(context.Background(), NewS3(fake, "b"), "configs/a.yaml", "", configLimit); err != nil {
		t.Fatal(err)
	}
	if fake.last.VersionId != nil || aws.ToString(fake.last.Key) != "configs/a.yaml" || aws.ToString(fake.last.Bucket) != "b" {
		t.Errorf("GetObject input = %+v, want b/configs/a.yaml with no version", fake.last)
	}
}

func TestGetConfigDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(name string, size int64) string {
		t.Helper()
		p := filepath.Join(root, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		// A sparse file: its size is what matters, not its bytes.
		if err := errors.Join(f.Truncate(size), f.Close()); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bigPath := write("big.yaml", 16<<20)
	write("edge.yaml", configLimit)
	d := NewDir(root)
	ctx := context.Background()

	_, err := GetConfig(ctx, d, "big.yaml", "", configLimit)
	var tooLarge *ConfigTooLargeError
	if !errors.Is(err, ErrTooLarge) || !errors.As(err, &tooLarge) || !strings.Contains(err.Error(), "config is 16777216 bytes, limit is 65536") {
		t.Fatalf("GetConfig(16 MiB file) error = %v, want \"config is 16777216 bytes, limit is 65536\"", err)
	}
	f, err := os.Open(bigPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	if want := `"` + hex.EncodeToString(h.Sum(nil)) + `"`; tooLarge.ETag != want {
		t.Errorf("refused file's ETag = %q, want %q (its MD5, as S3 reports it)", tooLarge.ETag, want)
	}

	obj, err := GetConfig(ctx, d, "edge.yaml", "ignored", configLimit)
	if err != nil || len(obj.Body) != configLimit {
		t.Errorf("GetConfig(file at the limit) = %d bytes, %v; want %d bytes", len(obj.Body), err, configLimit)
	}
	if same, err := d.Get(ctx, "edge.yaml"); err != nil || same.ETag != obj.ETag {
		t.Errorf("Get ETag = %q, %v; GetConfig's %q", same.ETag, err, obj.ETag)
	}
	if _, err := GetConfig(ctx, d, "missing.yaml", "", configLimit); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetConfig(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := GetConfig(ctx, d, "../escape.yaml", "", configLimit); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("GetConfig(../escape.yaml) error = %v, want an invalid-key error", err)
	}
}

// mapStore is a Store of another package's kind: GetConfig reads it whole
// and checks the size after.
type mapStore map[string][]byte

func (m mapStore) Get(_ context.Context, key string) (Object, error) {
	b, ok := m[key]
	if !ok {
		return Object{}, ErrNotFound
	}
	return Object{Body: b, ETag: `"` + key + `"`}, nil
}

func (m mapStore) Put(context.Context, string, []byte, string) error { return nil }

func (m mapStore) GetVersion(ctx context.Context, key, versionID string) (Object, error) {
	obj, err := m.Get(ctx, key+"@"+versionID)
	obj.VersionID = versionID
	return obj, err
}

func TestGetConfigOtherStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mapStore{"a": []byte("current"), "a@v1": []byte("first"), "big": make([]byte, configLimit+1)}
	if obj, err := GetConfig(ctx, s, "a", "v1", configLimit); err != nil || string(obj.Body) != "first" {
		t.Errorf("GetConfig(a, v1) = %q, %v; want the version's \"first\"", obj.Body, err)
	}
	if obj, err := GetConfig(ctx, s, "a", "", configLimit); err != nil || string(obj.Body) != "current" {
		t.Errorf("GetConfig(a) = %q, %v; want \"current\"", obj.Body, err)
	}
	_, err := GetConfig(ctx, s, "big", "", configLimit)
	var tooLarge *ConfigTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Size != configLimit+1 || tooLarge.ETag != `"big"` || !errors.Is(err, ErrTooLarge) {
		t.Errorf("GetConfig(big) error = %v, want a ConfigTooLargeError of 65537 bytes with its ETag", err)
	}
	if _, err := GetConfig(ctx, s, "none", "", configLimit); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetConfig(none) error = %v, want ErrNotFound", err)
	}
}

// The SDK against a real S3 API: the size comes from Content-Length, and the
// refusal carries the ETag from the response headers.
func TestGetConfigAgainstMoto(t *testing.T) {
	t.Parallel()
	client := motoS3(t)
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("edp-test")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	s := NewS3(client, "edp-test")
	if err := s.Put(ctx, "configs/big.yaml", make([]byte, configLimit+1), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "configs/ok.yaml", []byte("model: {type: DecisionTreeClassifier}\n"), ""); err != nil {
		t.Fatal(err)
	}
	_, err := GetConfig(ctx, s, "configs/big.yaml", "", configLimit)
	var tooLarge *ConfigTooLargeError
	if !errors.As(err, &tooLarge) || !strings.Contains(err.Error(), "get s3://edp-test/configs/big.yaml: config is 65537 bytes, limit is 65536") || tooLarge.ETag == "" {
		t.Errorf("GetConfig(big) error = %v (%#v), want \"config is 65537 bytes, limit is 65536\" with the ETag", err, tooLarge)
	}
	obj, err := GetConfig(ctx, s, "configs/ok.yaml", "", configLimit)
	if err != nil || !strings.HasPrefix(string(obj.Body), "model:") || obj.ETag == "" {
		t.Errorf("GetConfig(ok) = %q (ETag %q), %v", obj.Body, obj.ETag, err)
	}
}

// BenchmarkGetConfigOversize reads a 16 MiB config 8 at a time, with and
// without a Content-Length, and reports the bytes read per call
// (read-B/op) and the process's peak RSS (peak-MB). Before GetConfig the
// job read all 16 MiB of each.
func BenchmarkGetConfigOversize(b *testing.B) {
	const size, conc = 16 << 20, 8
	for _, length := range []bool{true, false} {
		b.Run("content-length="+strconv.FormatBool(length), func(b *testing.B) {
			fake := &sizedS3{size: size}
			if length {
				fake.contentLength = aws.Int64(size)
			}
			s := NewS3(fake, "b")
			peak := startPeakRSS(b)
			for b.Loop() {
				var wg sync.WaitGroup
				for range conc {
					wg.Go(func() {
						if _, err := GetConfig(context.Background(), s, "configs/big.yaml", "", configLimit); !errors.Is(err, ErrTooLarge) {
							panic(fmt.Sprintf("GetConfig(16 MiB) error = %v, want ErrTooLarge", err))
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(fake.read.Load())/float64(b.N*conc), "read-B/op")
			peak(b)
		})
	}
}

// startPeakRSS frees what the heap no longer needs, resets the kernel's
// peak RSS mark (VmHWM) of this process and returns a func that reports the
// peak since then as the metric peak-MB. Without Linux's /proc it logs why
// and reports nothing.
func startPeakRSS(b *testing.B) func(*testing.B) {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("peak RSS not measured: cannot reset it: %v", err)
		return func(*testing.B) {}
	}
	return func(b *testing.B) {
		b.Helper()
		status, err := os.ReadFile("/proc/self/status")
		if err != nil {
			b.Logf("peak RSS not measured: %v", err)
			return
		}
		for line := range strings.Lines(string(status)) {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err == nil {
					b.ReportMetric(float64(kb)/1024, "peak-MB")
					return
				}
			}
		}
		b.Logf("peak RSS not measured: no VmHWM in /proc/self/status")
	}
}
