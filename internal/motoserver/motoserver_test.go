package motoserver

import (
	"context"
	"net/http"
	"testing"
)

func TestStartResetStop(t *testing.T) {
	s := StartT(t)
	ctx := context.Background()
	if err := s.Reset(ctx); err != nil {
		t.Fatalf("reset: %v", err)
	}
	s.Stop()
	if _, err := http.Get(s.Endpoint + "/moto-api/data.json"); err == nil {
		t.Fatalf("server still answers after Stop")
	}
	s.Stop() // second call is a no-op
}
