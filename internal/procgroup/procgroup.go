//go:build unix

// Package procgroup records the process groups a program starts in a file,
// so that another process can stop them whatever happened to the program
// that started them (a SIGKILL, a crash, a closed terminal).
//
// The contract: each child is started as the leader of a process group of
// its own; its starter calls Registry.Track with the child's PID as soon as
// it has started and the returned untrack func once the group is gone. The
// file then always names every group the owner has running. Sweep, run by
// anyone, stops the groups of a file whose owner is gone: SIGTERM to each
// group, then SIGKILL after a bound.
//
// A PID is only ever signalled when it is still the process that was
// recorded: each record keeps the leader's start time, and a leader that is
// gone (or a zombie) leaves a group that the kernel guarantees is still the
// recorded one, since a process group's ID is not reused while the group
// has members. Processes are addressed by PID and group, never by name.
package procgroup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Process identifies one process: its PID and its start time as the
// operating system reports it, so a reused PID is not mistaken for it.
type Process struct {
	PID int `json:"pid"`
	// Start is the start time ("" when it could not be read, in which
	// case the PID alone identifies the process).
	Start string `json:"start"`
}

// Self is the calling process.
func Self() Process { return Of(os.Getpid()) }

// Of reads the start time of pid; a process that does not exist gives a
// Process with an empty Start.
func Of(pid int) Process {
	start, _ := startTime(pid)
	return Process{PID: pid, Start: start}
}

// Running reports whether p is still running (not a zombie) and is the
// process it was when recorded.
func (p Process) Running() bool {
	if p.PID <= 0 || !running(p.PID) {
		return false
	}
	if p.Start == "" {
		return true
	}
	start, err := startTime(p.PID)
	return err == nil && start == p.Start
}

// Group is one recorded process group: its leader and what it is.
type Group struct {
	Process
	// Name says what the group runs, e.g. "moto_server" or "task 3f2a…".
	Name string `json:"name"`
}

// live reports whether the group still has a running member that belongs
// to it: the recorded leader, or (once the leader is gone) any member.
func (g Group) live() bool {
	if g.PID <= 0 {
		return false
	}
	if running(g.PID) {
		return g.Process.Running()
	}
	return len(members(g.PID)) > 0 || len(sessionMembers(g.PID)) > 0
}

// File is the content of a registry file.
type File struct {
	// Owner is the process that started the groups.
	Owner Process `json:"owner"`
	// Groups are the groups it has running.
	Groups []Group `json:"groups"`
}

// ErrOwnerRunning is returned by Sweep and New when the file's owner is
// still running: its groups are its own to stop.
var ErrOwnerRunning = errors.New("the process that started them is still running")

// Read reads a registry file.
func Read(path string) (File, error) {
	var f File
	raw, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return f, fmt.Errorf("read %s: %w", path, err)
	}
	return f, nil
}

// Registry is the calling process's registry file. Its methods are safe
// for concurrent use.
type Registry struct {
	path string
	mu   sync.Mutex
	file File
}

// New creates the registry file at path, owned by the calling process. A
// file left by an owner that is gone is replaced only when none of its
// groups is live: Sweep it first. A file whose owner still runs is an
// ErrOwnerRunning.
func New(path string) (*Registry, error) {
	if old, err := Read(path); err == nil {
		if old.Owner.PID != os.Getpid() && old.Owner.Running() {
			return nil, fmt.Errorf("process registry %s: pid %d: %w", path, old.Owner.PID, ErrOwnerRunning)
		}
		for _, g := range old.Groups {
			if g.live() {
				return nil, fmt.Errorf("process registry %s: %s (pid %d) left by pid %d still runs", path, g.Name, g.PID, old.Owner.PID)
			}
		}
	}
	r := &Registry{path: path, file: File{Owner: Self(), Groups: []Group{}}}
	if err := r.write(); err != nil {
		return nil, err
	}
	return r, nil
}

// Path is the registry file's path.
func (r *Registry) Path() string { return r.path }

// Track records the process group led by pid (started just now) under
// name and returns the func that forgets it, to call once the group is
// gone. A record that cannot be written is returned as an error after the
// group is tracked in memory (the next write retries).
func (r *Registry) Track(name string, pid int) (untrack func(), err error) {
	g := Group{Process: Of(pid), Name: name}
	r.mu.Lock()
	r.file.Groups = append(r.file.Groups, g)
	err = r.write()
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.file.Groups = slices.DeleteFunc(r.file.Groups, func(x Group) bool { return x == g })
			_ = r.write()
		})
	}, err
}

// Groups are the groups tracked now.
func (r *Registry) Groups() []Group {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.file.Groups)
}

// Close removes the file when nothing is tracked any more; otherwise it
// keeps the file, so Sweep can stop what is left, and says what.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.file.Groups) > 0 {
		return fmt.Errorf("process registry %s: %d process group(s) still tracked, left for a sweep", r.path, len(r.file.Groups))
	}
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// write replaces the file atomically (a reader never sees half of it).
func (r *Registry) write() error {
	raw, err := json.MarshalIndent(r.file, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(r.path), filepath.Base(r.path)+".*")
	if err != nil {
		return fmt.Errorf("write process registry: %w", err)
	}
	_, err = tmp.Write(raw)
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), r.path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write process registry %s: %w", r.path, err)
	}
	return nil
}

// killWait bounds the wait for a group to go after SIGKILL.
const killWait = 5 * time.Second

// Sweep stops the live groups recorded in path, whose owner must be gone:
// SIGTERM to every group at once, then SIGKILL to those still running
// after grace. It removes the file once they are all gone and returns the
// groups it stopped. No file is no error; an owner still running is an
// ErrOwnerRunning, and nothing is stopped.
func Sweep(ctx context.Context, path string, grace time.Duration) ([]Group, error) {
	f, err := Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if f.Owner.PID != os.Getpid() && f.Owner.Running() {
		return nil, fmt.Errorf("stop the processes of %s: pid %d: %w", path, f.Owner.PID, ErrOwnerRunning)
	}
	var live []Group
	for _, g := range f.Groups {
		if g.live() {
			live = append(live, g)
		}
	}
	if err := stopGroups(ctx, live, grace); err != nil {
		return live, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return live, err
	}
	return live, nil
}

// KillSession sends SIGKILL to every process of session sid: a task
// started in a session of its own (setsid) and every process group it made
// (a command job runs in a group of its own) end together, as the
// processes of a container do. A process that started a session of its
// own escapes it.
func KillSession(sid int) {
	if sid <= 1 {
		return
	}
	_ = syscall.Kill(-sid, syscall.SIGKILL)
	for _, pid := range sessionMembers(sid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// stopGroups sends SIGTERM to each group, SIGKILL to the ones still live
// after grace, and waits for them to go.
func stopGroups(ctx context.Context, groups []Group, grace time.Duration) error {
	for _, g := range groups {
		_ = syscall.Kill(-g.PID, syscall.SIGTERM)
	}
	left := waitGone(ctx, groups, grace)
	for _, g := range left {
		_ = syscall.Kill(-g.PID, syscall.SIGKILL)
	}
	for _, g := range groups {
		// What a group's leader started in groups of their own, in its
		// session (a task's command job). A pid stays reserved while it
		// names a live session, so no other session has this id.
		KillSession(g.PID)
	}
	left = waitGone(ctx, left, killWait)
	if len(left) > 0 {
		var errs []error
		for _, g := range left {
			errs = append(errs, fmt.Errorf("%s (pid %d) still runs after SIGKILL", g.Name, g.PID))
		}
		return errors.Join(errs...)
	}
	return ctx.Err()
}

// waitGone polls until no group of gs is live or d has passed, and
// returns the live ones.
func waitGone(ctx context.Context, gs []Group, d time.Duration) []Group {
	gs = slices.Clone(gs) // the caller's slice is its report
	deadline := time.Now().Add(d)
	for {
		gs = slices.DeleteFunc(gs, func(g Group) bool { return !g.live() })
		if len(gs) == 0 || time.Now().After(deadline) {
			return gs
		}
		select {
		case <-ctx.Done():
			return gs
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop asks p to stop (SIGTERM to the process alone), waits up to grace
// for it to go, then kills it. It reports whether p was running.
func Stop(ctx context.Context, p Process, grace time.Duration) (bool, error) {
	if !p.Running() {
		return false, nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil {
		return false, nil // gone in between
	}
	if waitProcess(ctx, p, grace) {
		return true, nil
	}
	if err := ctx.Err(); err != nil {
		return true, err
	}
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	if waitProcess(ctx, p, killWait) {
		return true, nil
	}
	return true, fmt.Errorf("pid %d still runs after SIGKILL", p.PID)
}

// waitProcess polls until p has gone or d has passed.
func waitProcess(ctx context.Context, p Process, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for p.Running() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}
