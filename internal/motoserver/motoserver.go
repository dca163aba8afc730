// Package motoserver starts and stops a local moto_server (an AWS API
// emulator) for integration tests. It is standard-library only.
//
// Each Start picks a free loopback port, launches `moto_server` there, waits
// until it answers and returns its endpoint; Stop kills exactly that process
// by PID. Tests point the AWS SDK at Endpoint (path-style S3) with any static
// credentials.
package motoserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// InstallHint tells a user how to get the emulator when it is missing.
const InstallHint = "moto_server not found on PATH: install it with `pip install 'moto[server]'` (Python 3)"

// Region and AccountID are what moto uses unless told otherwise.
const (
	Region    = "us-east-1"
	AccountID = "123456789012"
)

// Server is one running moto_server process.
type Server struct {
	// Endpoint is the base URL, e.g. http://127.0.0.1:43211.
	Endpoint string
	cmd      *exec.Cmd
	done     chan struct{}
}

// Options configure StartWith. Every field works at its zero value.
type Options struct {
	// Track, when set, is called with the PID of the process group leader
	// as soon as moto_server has started (before it answers), so a
	// record of it exists even if the caller dies during the start; the
	// func it returns is called once the process has exited. Default: none.
	Track func(pid int) (untrack func())
}

// Start launches moto_server on a free loopback port and waits (up to 30 s)
// until it answers HTTP.
func Start(ctx context.Context) (*Server, error) { return StartWith(ctx, Options{}) }

// StartWith is Start with options.
func StartWith(ctx context.Context, opts Options) (*Server, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, errors.New(InstallHint)
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = nil, nil
	// Own process group, so Stop also ends any child the launcher script forks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	untrack := func() {}
	if opts.Track != nil {
		untrack = opts.Track(cmd.Process.Pid)
	}
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); untrack(); close(s.done) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := s.ping(ctx); err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, errors.New("moto_server exited before it answered")
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, errors.New("moto_server did not answer within 30s")
		}
	}
}

// StartT starts a server for a test and stops it when the test ends. A
// missing moto_server fails the test (it is never skipped).
func StartT(t testing.TB) *Server {
	t.Helper()
	s, err := Start(context.Background())
	if err != nil {
		t.Fatalf("moto: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Reset wipes all emulated state (POST /moto-api/reset).
func (s *Server) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset moto: status %d", resp.StatusCode)
	}
	return nil
}

// Env returns environment variables that point an AWS SDK (or a child
// process such as the consumer) at this server.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Stop kills the server process (by PID, with its process group) and waits
// for it to exit. It is safe to call more than once.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.done
	}
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/moto-api/data.json", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
