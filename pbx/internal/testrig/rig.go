package testrig

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// Wait bounds every await: generous, since the race detector on a small
// machine is slow, and an await returns as soon as its condition holds.
const Wait = 15 * time.Second

// RunChecked runs the tests of m and fails the run if any goroutine running
// code of one of the packages (import paths, e.g.
// "github.com/pbx-bridge/pbx-bridge/pbx") outlives them: every session and
// stream is closed by its test, and Close must wait for all of its
// goroutines. It does not return.
func RunChecked(m *testing.M, packages ...string) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(packages); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines of %s leaked:\n%s\n", strings.Join(packages, ", "), leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines returns the stacks of goroutines running code of the
// packages (not of their tests), after giving them time to finish.
func leakedGoroutines(packages []string) string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, p := range packages {
				if strings.Contains(g, p+".(") && !strings.Contains(g, p+"_test.") {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// NewPBX starts a simulator that the test closes.
func NewPBX(t testing.TB, opts pbxtest.Options) *pbxtest.Server {
	t.Helper()
	srv, err := pbxtest.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// Logger sends a package's logs to the test's log, shown on failure.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Eventually polls cond until it holds, failing the test after Wait.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", Wait, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Recorder collects strings from hooks and loggers on several goroutines.
type Recorder struct {
	mu    sync.Mutex
	items []string
	times []time.Time
}

// Add records s, and when.
func (r *Recorder) Add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, s)
	r.times = append(r.times, time.Now())
}

// List returns what was recorded, in order.
func (r *Recorder) List() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.items...)
}

// Count returns how many times s was recorded.
func (r *Recorder) Count(s string) int {
	n := 0
	for _, item := range r.List() {
		if item == s {
			n++
		}
	}
	return n
}

// Stamps returns when each item was recorded.
func (r *Recorder) Stamps() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.times...)
}

// SyncBuffer is a bytes.Buffer for a logger on several goroutines.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// CountingLimiter is a limiter (pbx.Limiter) that counts the requests it
// lets through and the slots not yet given back.
type CountingLimiter struct {
	mu       sync.Mutex
	acquired int
	held     int
}

// Acquire lets a request through at once.
func (l *CountingLimiter) Acquire(context.Context) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acquired++
	l.held++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.held--
	}, nil
}

// Counts returns how many slots were acquired, and how many are held.
func (l *CountingLimiter) Counts() (acquired, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acquired, l.held
}
