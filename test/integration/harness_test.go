// Package integration runs the bridge end to end: a real NATS server
// (embedded nats-server), the PBX simulator over real TLS and WebSockets,
// the bridge, and a plain NATS client watching what it publishes.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/bridge/natsembed"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s\n%s", d, what, goroutines())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// goroutines returns every goroutine's stack: a wait that timed out leaves
// the evidence of what was stuck.
func goroutines() string {
	buf := make([]byte, 4<<20)
	return "goroutines at the timeout:\n" + string(buf[:runtime.Stack(buf, true)])
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNATS starts an embedded NATS server with JetStream in dir.
func startNATS(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	ns, err := natsembed.Start(fmt.Sprintf("127.0.0.1:%d", port), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func startPBX(t testing.TB, exts ...string) (*pbxtest.Server, map[string]string) {
	t.Helper()
	sim, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	secrets := make(map[string]string)
	for _, e := range exts {
		secrets[e] = sim.AddExtension(pbxtest.Extension{Number: e}).Secret
	}
	return sim, secrets
}

// fastConfig is a bridge configuration with timings short enough for tests.
func fastConfig(sim *pbxtest.Server, secrets map[string]string, log *slog.Logger) bridge.Config {
	cfg := bridge.Config{
		PBX: pbx.Config{
			URL:            sim.URL(),
			RootCAs:        sim.CertPool(),
			RequestTimeout: 5 * time.Second,
			PingAfter:      300 * time.Millisecond,
			PongTimeout:    300 * time.Millisecond,
			KeepaliveEvery: 400 * time.Millisecond,
			ReconnectMin:   20 * time.Millisecond,
			ReconnectMax:   200 * time.Millisecond,
		},
		RetryMin:        20 * time.Millisecond,
		RetryMax:        300 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		PBXRate:         1000,
		PBXConcurrency:  16,
		Logger:          log,
	}
	cfg.JetStream.AckTimeout = 2 * time.Second
	for ext, secret := range secrets {
		cfg.Extensions = append(cfg.Extensions, bridge.Credential{Username: ext, Secret: secret})
	}
	return cfg
}

// runningBridge is a bridge running in the background.
type runningBridge struct {
	*bridge.Bridge
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func runBridge(t testing.TB, nc *nats.Conn, cfg bridge.Config) *runningBridge {
	t.Helper()
	b, err := bridge.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rb := &runningBridge{Bridge: b, cancel: cancel, done: make(chan error, 1)}
	go func() { rb.done <- b.Run(ctx) }()
	t.Cleanup(func() { rb.stop(t) })
	return rb
}

// stop shuts the bridge down and waits for it; stopping twice is harmless.
func (rb *runningBridge) stop(t testing.TB) {
	t.Helper()
	rb.once.Do(func() {
		rb.cancel()
		select {
		case err := <-rb.done:
			if err != nil {
				t.Errorf("bridge Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("bridge did not stop within 30s")
		}
	})
}

func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// event is one published event as a subscriber sees it.
type event struct {
	Subject string
	Env     schema.Event
	Raw     []byte
}

// recorder subscribes to every event subject and validates each event
// against its schema as it arrives.
type recorder struct {
	t    testing.TB
	mu   sync.Mutex
	evs  []event
	bad  []string
	subs *nats.Subscription
}

func record(t testing.TB, nc *nats.Conn, subject string) *recorder {
	t.Helper()
	r := &recorder{t: t}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if m.Header.Get("Ce-Type") == "" {
			return // a request/reply message, not an event
		}
		var env schema.Event
		err := json.Unmarshal(m.Data, &env)
		if err == nil {
			err = schema.ValidateEvent(m.Data)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad = append(r.bad, fmt.Sprintf("%s: %v: %s", m.Subject, err, m.Data))
			return
		}
		r.evs = append(r.evs, event{Subject: m.Subject, Env: env, Raw: m.Data})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r.subs = sub
	t.Cleanup(func() {
		_ = sub.Unsubscribe()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, b := range r.bad {
			t.Errorf("event not valid against its schema: %s", b)
		}
	})
	return r
}

// on returns the events published on subject so far.
func (r *recorder) on(subject string) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event
	for _, e := range r.evs {
		if e.Subject == subject {
			out = append(out, e)
		}
	}
	return out
}

// all returns every event so far.
func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// subjects returns the subjects of all events so far, in arrival order.
func (r *recorder) subjects() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.evs))
	for i, e := range r.evs {
		out[i] = e.Subject
	}
	return out
}

// await waits until n events arrived on subject and returns them.
func (r *recorder) await(subject string, n int, d time.Duration) []event {
	r.t.Helper()
	var got []event
	deadline := time.Now().Add(d)
	for {
		got = r.on(subject)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %d events on %s (got %d); all subjects: %s\n%s",
				n, subject, len(got), strings.Join(r.subjects(), " "), goroutines())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// data decodes an event's data.
func data[T any](t testing.TB, e event) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(e.Env.Data, &v); err != nil {
		t.Fatalf("decode %s data: %v", e.Subject, err)
	}
	return v
}

func testLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
