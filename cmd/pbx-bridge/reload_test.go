package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/bridge"
)

func TestChangedKeys(t *testing.T) {
	t.Setenv("TEST_SECRET_1001", "x")
	base := "discovery: {include: []}\n" + minimal
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"same file", base, nil},
		{"extensions only", strings.Replace(base, `"1001"`, `"1002"`, 1) + "  - username: \"1003\"\n    secret: y\n", nil},
		{"empty list and none", minimal, nil},
		{"a default spelled out", base + "subject_prefix: pbx\nlog: {level: info}\n", nil},
		{"nested", strings.Replace(base, "pbx:\n", "pbx:\n  heartbeat: {ping_after: 45s}\n", 1), []string{"pbx.heartbeat.ping_after"}},
		{"several", strings.Replace(base, "pbx:\n", "pbx:\n  rate_limit: {requests_per_second: 5}\n  openapi: {access_key: k, access_id: i}\n", 1) + "jetstream: {enabled: false}\nlog: {level: debug}\n",
			[]string{"pbx.rate_limit.requests_per_second", "pbx.openapi.access_id", "pbx.openapi.access_key", "jetstream.enabled", "log.level"}},
		{"a list", strings.Replace(base, "include: []", `include: ["1*"]`, 1), []string{"discovery.include"}},
		{"a duration", base + "catchup: {interval: 1m}\n", []string{"catchup.interval"}},
	}
	old, err := parseConfig([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := parseConfig([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := changedKeys(old, cur)
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("changed keys = %q, want %q", got, want)
			}
		})
	}
}

// fakeBridge records what a reload applies.
type fakeBridge struct {
	applied [][]bridge.Credential
	ch      bridge.ExtensionChanges
	err     error
}

func (f *fakeBridge) ApplyExtensions(creds []bridge.Credential) (bridge.ExtensionChanges, error) {
	f.applied = append(f.applied, creds)
	return f.ch, f.err
}

func TestReload(t *testing.T) {
	t.Setenv("TEST_SECRET_1001", "secret-of-1001")
	path := filepath.Join(t.TempDir(), "c.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(minimal)
	start, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncLog
	fb := &fakeBridge{}
	r := &reloader{path: path, b: fb, log: slog.New(slog.NewTextHandler(&logs, nil)), running: start}

	// A bad file: every problem reported, nothing applied.
	write(strings.Replace(minimal, `"1001"`, `"10.01"`, 1) + "subject_prefix: \"a..b\"\n")
	if r.reload() {
		t.Fatal("a bad file was applied")
	}
	if len(fb.applied) != 0 {
		t.Fatalf("a bad file reached the bridge: %v", fb.applied)
	}
	if l := logs.take(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "extensions[0].username") || !strings.Contains(l, "subject_prefix") {
		t.Errorf("the bad file's problems are not all in the log:\n%s", l)
	}

	// Extensions and another key: the extensions are applied, the other
	// key named, and its running value kept.
	fb.ch = bridge.ExtensionChanges{Added: []string{"1002"}, SecretChanged: []string{"1001"}}
	write(strings.Replace(minimal, "pbx:\n", "pbx:\n  rate_limit: {requests_per_second: 5}\n", 1) + "  - username: \"1002\"\n    secret: other-secret\n")
	if !r.reload() {
		t.Fatalf("not applied:\n%s", logs.take())
	}
	want := []bridge.Credential{{Username: "1001", Secret: "secret-of-1001"}, {Username: "1002", Secret: "other-secret"}}
	if len(fb.applied) != 1 || !reflect.DeepEqual(fb.applied[0], want) {
		t.Errorf("applied %v, want %v", fb.applied, want)
	}
	l := logs.take()
	for _, w := range []string{"added=[1002]", "secret_changed=[1001]", `msg="pbx.rate_limit.requests_per_second changed: needs a restart"`} {
		if !strings.Contains(l, w) {
			t.Errorf("the log does not say %q:\n%s", w, l)
		}
	}
	for _, secret := range []string{"secret-of-1001", "other-secret"} {
		if strings.Contains(l, secret) {
			t.Errorf("a secret is in the log:\n%s", l)
		}
	}
	if len(r.running.Extensions) != 2 || r.running.PBX.RateLimit.RequestsPerSecond != 0 {
		t.Errorf("running config after the reload: %d extensions, rate %v; want 2 and the startup rate",
			len(r.running.Extensions), r.running.PBX.RateLimit.RequestsPerSecond)
	}

	// The same file again: the key still needs the restart.
	fb.ch = bridge.ExtensionChanges{}
	if !r.reload() {
		t.Fatal("not applied")
	}
	if l := logs.take(); !strings.Contains(l, "no change to the extensions") || !strings.Contains(l, "pbx.rate_limit.requests_per_second changed") {
		t.Errorf("second reload:\n%s", l)
	}

	// The bridge refuses: the running configuration stays.
	fb.err = errors.New("refused")
	write(minimal)
	if r.reload() {
		t.Fatal("a refused reload counted as applied")
	}
	if len(r.running.Extensions) != 2 {
		t.Errorf("a refused reload replaced the running extensions: %d", len(r.running.Extensions))
	}
	if l := logs.take(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "refused") {
		t.Errorf("refusal not logged:\n%s", l)
	}
}

// syncLog is a log sink whose content a test takes piece by piece.
type syncLog struct{ strings.Builder }

func (s *syncLog) take() string {
	out := s.String()
	s.Reset()
	return out
}
