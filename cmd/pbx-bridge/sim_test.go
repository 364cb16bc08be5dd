package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is the stdout of a command running on another goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitOutput waits until the output holds every one of want.
func waitOutput(t *testing.T, out *lockedBuffer, d time.Duration, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := out.String()
		missing := ""
		for _, w := range want {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output after %s:\n%s", missing, d, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSimPrintsAWorkingConfiguration runs the simulator as `pbx-bridge
// sim` does and uses the configuration it prints, OpenAPI credentials and
// discovery, with the extensions command.
func TestSimPrintsAWorkingConfiguration(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut lockedBuffer
	done := make(chan error, 1)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	go func() {
		done <- simCmd(ctx, []string{"--listen", "127.0.0.1:0", "--extensions", "1001,1002", "--ca-file", ca}, &out, &errOut)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sim: %v", err)
		}
	}()
	s := waitOutput(t, &out, 10*time.Second, "access_key:", "secret:")
	_, config, ok := strings.Cut(s, "A configuration for it:\n")
	config, _, _ = strings.Cut(config, "Or, without")
	if !ok || !strings.Contains(config, "openapi:") || !strings.Contains(config, "enabled: true") {
		t.Fatalf("no configuration with OpenAPI credentials and discovery:\n%s", s)
	}
	if strings.Contains(config, "secret:") {
		t.Errorf("the configuration has secrets:\n%s", config)
	}
	path := filepath.Join(t.TempDir(), "sim.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var listed, listErr bytes.Buffer
	if code := run([]string{"extensions", "--config", path}, &listed, &listErr); code != 0 {
		t.Fatalf("extensions on the printed configuration: exit %d\n%s\n%s", code, config, listErr.String())
	}
	rows := rowsOf(listed.String())
	for _, n := range []string{"1001", "1002"} {
		if rows[n] != "yes include: (all)" {
			t.Errorf("%s: %q\n%s", n, rows[n], listed.String())
		}
	}
}

// TestDemoProvisionsThroughOpenAPI runs the demo until an event and the
// info reply of a discovered extension arrive.
func TestDemoProvisionsThroughOpenAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs NATS, the simulator and the bridge")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- demoCmd(ctx, []string{"--nats-listen", "127.0.0.1:0", "--extensions", "1001,1002", "--calls-every", "50ms"}, &out, &errOut)
	}()
	waitOutput(t, &out, 30*time.Second, "-> request pbx.1001.info", `"online"`, "<- pbx.1002.cdr.created")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("demo: %v\n%s", err, errOut.String())
	}
}

// TestDemoNeedsTwoExtensions: one extension is a clear error, not a panic
// when the demo makes its first call.
func TestDemoNeedsTwoExtensions(t *testing.T) {
	var out, errOut lockedBuffer
	err := demoCmd(context.Background(), []string{"--nats-listen", "127.0.0.1:0", "--extensions", "1001"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "at least two") {
		t.Errorf("demo with one extension: %v, want an error saying it needs at least two", err)
	}
}
