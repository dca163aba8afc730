package job

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/edp-pipelines/edp/consumer/store"
)

// memStore is an in-memory Store; with fixed set, Get returns it for every
// key (so each benchmark iteration can be a new source object).
type memStore struct {
	mu    sync.Mutex
	m     map[string][]byte
	fixed []byte
}

func (s *memStore) Get(_ context.Context, key string) (store.Object, error) {
	if s.fixed != nil {
		return store.Object{Body: s.fixed}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[key]
	if !ok {
		return store.Object{}, store.ErrNotFound
	}
	return store.Object{Body: b}, nil
}

func (s *memStore) Put(_ context.Context, key string, body []byte, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[key] = body
	return nil
}

// BenchmarkRun measures a whole job of examples' random-forest config
// (100 trees) against in-memory stores: parse, split, fit, evaluate, render
// and write the artifacts and records.
func BenchmarkRun(b *testing.B) {
	body := readBenchFixture(b, "rf.yaml")
	r := &Runner{In: &memStore{fixed: body}, Out: &memStore{}}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := r.Run(ctx, Source{Key: "configs/rf.yaml", VersionID: strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
}
