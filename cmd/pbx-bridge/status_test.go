package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/bridge/natsembed"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// TestStatusCommand runs a one-replica fleet and prints its status table.
func TestStatusCommand(t *testing.T) {
	ns, err := natsembed.Start("127.0.0.1:-1", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	sim, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	cfg := bridge.Config{
		PBX:             pbx.Config{URL: sim.URL(), RootCAs: sim.CertPool()},
		Fleet:           bridge.FleetConfig{Enabled: true, Replica: "replica-one", LeaseTTL: 3 * time.Second},
		ShutdownTimeout: 3 * time.Second,
		Logger:          slog.New(slog.DiscardHandler),
	}
	for _, e := range []string{"1001", "1002"} {
		cfg.Extensions = append(cfg.Extensions, bridge.Credential{Username: e, Secret: sim.AddExtension(pbxtest.Extension{Number: e}).Secret})
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b, err := bridge.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var out, errOut bytes.Buffer
	deadline := time.Now().Add(15 * time.Second)
	for {
		out.Reset()
		errOut.Reset()
		code := run([]string{"status", "--nats", ns.ClientURL()}, &out, &errOut)
		if code == 0 && strings.Contains(out.String(), "2 extensions owned") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: exit %d, stdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"REPLICA", "replica-one", "1001 1002", "1 replicas, 2 extensions owned, 0 changing hands"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestStatusCommandWithoutFleet(t *testing.T) {
	ns, err := natsembed.Start("127.0.0.1:-1", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	var out, errOut bytes.Buffer
	if code := run([]string{"status", "--nats", ns.ClientURL(), "--timeout", "300ms"}, &out, &errOut); code == 0 {
		t.Fatalf("status with no fleet exited 0: %s", out.String())
	}
	if !strings.Contains(errOut.String(), "fleet.enabled") {
		t.Errorf("stderr does not say what is missing: %s", errOut.String())
	}
}

func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 10, 0, time.UTC)
	var b bytes.Buffer
	printStatus(&b, schema.FleetStatus{Replica: "a", Unowned: []string{"1003"}, Replicas: []schema.FleetReplica{
		{Replica: "a", Heartbeat: now.Add(-2 * time.Second), Extensions: []string{"1001"}},
		{Replica: "b", Heartbeat: now.Add(-time.Second), Extensions: []string{"1002"}},
	}}, now)
	want := "REPLICA  HEARTBEAT  OWNS  EXTENSIONS\na        2s ago     1     1001\nb        1s ago     1     1002\n\n2 replicas, 2 extensions owned, 1 changing hands: 1003 (as a sees it)\n"
	if b.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	printStatus(&b, schema.FleetStatus{Replica: "a", Leader: "b", Replicas: []schema.FleetReplica{}}, now)
	if want := "OpenAPI leader (extension list, event socket): b\n"; !strings.HasSuffix(b.String(), want) {
		t.Errorf("status without its leader line %q:\n%s", want, b.String())
	}
}
