package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// benchChildEnv makes the test binary act as pbx-bridge: the bench starts
// its simulator and bridge as os.Executable(), which in a test is the test
// binary.
const benchChildEnv = "PBX_BRIDGE_TEST_AS_BINARY"

func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// Figure 7's plumbing, end to end with its two child processes, at a rate
// no machine falls behind: every frame is matched to its event, and the
// counts agree (the call events expected, arrived, stored; no drop). It
// checks no time.
func TestBenchLiveFigureCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a simulator and a bridge process")
	}
	t.Setenv(benchChildEnv, "1")
	jsonFile := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := benchCmd(ctx, []string{"--figures", "7", "--footprint-small", "1", "--footprint-large", "1", "--extensions", "1",
		"--relogins", "0", "--live-rate", "20", "--live-duration", "500ms", "--live-ring", "20ms", "--live-talk", "20ms",
		"--live-extensions", "8", "--json", jsonFile}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	raw, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	rows := map[string]benchFigure{}
	for _, f := range rep.Figures {
		if f.Figure != "7" {
			t.Errorf("figure %s measured, only 7 asked", f.Figure)
		}
		rows[strings.SplitN(f.Name, " at ", 2)[0]] = f
	}
	// 10 calls, half internal: 5×2 + 5×1 extensions, 3 events each.
	missing := rows["live call events missing"]
	if missing.Value != 0 || !strings.HasPrefix(missing.Note, "45 of 45 call events arrived, 0 twice, 0 not of these calls; 45 stored") {
		t.Errorf("missing: %v, %q; want 0 and all 45 arrived and stored", missing.Value, missing.Note)
	}
	if d := rows["event socket frames the bridge dropped"]; d.Value != 0 || d.Met == nil || !*d.Met {
		t.Errorf("dropped: %+v", d)
	}
	for _, name := range []string{"30011 frame -> subscriber p50", "30011 frame -> subscriber max", "live events delivered"} {
		if f := rows[name]; f.Value <= 0 || f.Limit <= 0 {
			t.Errorf("%s: %+v, want a value and a limit", name, f)
		}
	}
	// And 5×5 + 5×3 call statuses: every event offered arrived.
	if d := rows["live events delivered"]; !strings.HasPrefix(d.Note, "95 of 95 events arrived") || !strings.Contains(d.Note, "(45 call, 40 call_status.changed, 10 cdr.ended;") {
		t.Errorf("delivered: %q, want 95 of 95: 45 call events, 40 statuses and 10 cdr.ended", d.Note)
	}
}

// The matching counts each event once, a second copy as twice, an event
// of another call as not of these calls, and what never came as missing.
func TestTallyLive(t *testing.T) {
	res := pbxtest.CallLoadResult{Calls: []pbxtest.LoadCall{
		{ID: "1.1", Exts: []string{"1001", "1002"}, Sent: [3]int64{1000, 2000, 3000}},
		{ID: "1.2", Exts: []string{"1003"}, Sent: [3]int64{1500, 0, 0}}, // its last two frames went to no socket
	}}
	want := expectCallEvents(res)
	if len(want) != 7 || unsent(res) != 2 {
		t.Fatalf("%d events expected, %d frames unsent; want 7 and 2", len(want), unsent(res))
	}
	ev := func(ext, event, call string, atNs int64) liveArrival {
		m := nats.NewMsg("pbx." + ext + ".call." + event)
		m.Data = []byte(`{"id":"x","data":{"event":"` + event + `","call_id":"` + call + `"}}`)
		return liveArrival{at: time.Unix(0, atNs), m: m}
	}
	status := liveArrival{at: time.Unix(0, 9000), m: nats.NewMsg("pbx.1001.call_status.changed")}
	got := []liveArrival{
		ev("1001", "ringing", "1.1", 1100), ev("1002", "ringing", "1.1", 1300),
		ev("1001", "ringing", "1.1", 1400), // twice
		ev("1003", "ringing", "1.2", 1600),
		ev("1001", "answered", "1.1", 2200),
		ev("1001", "ended", "1.9", 3100), // another call
		status,
	}
	tl := tallyLive(want, got)
	if tl.matched != 4 || tl.duplicates != 1 || tl.unexpected != 1 || tl.expected-tl.matched != 3 {
		t.Errorf("matched %d, twice %d, unexpected %d, missing %d; want 4, 1, 1, 3", tl.matched, tl.duplicates, tl.unexpected, tl.expected-tl.matched)
	}
	if tl.calls != 6 || tl.statuses != 1 || tl.cdrs != 0 {
		t.Errorf("kinds %+v", tl.liveCounts)
	}
	wantLat := []time.Duration{100, 100, 200, 300}
	if len(tl.lat) != 4 || tl.lat[0] != wantLat[0] || tl.lat[3] != wantLat[3] {
		t.Errorf("latencies %v, want %v", tl.lat, wantLat)
	}
	if r := tl.rate(); r != float64(len(got))/(8000*time.Nanosecond).Seconds() {
		t.Errorf("rate %v: from the first send (1000) to the last arrival (9000)", r)
	}
}

func TestDroppedFrames(t *testing.T) {
	for _, tc := range []struct {
		drops map[string]float64
		want  float64
	}{
		{nil, 0},
		{map[string]float64{`{reason="overflow"}`: 7}, 7},
		{map[string]float64{`{reason="overflow"}`: 3, `{reason="not_json"}`: 2}, 5},
	} {
		if got := droppedFrames(tc.drops); got != tc.want {
			t.Errorf("droppedFrames(%v) = %v, want %v", tc.drops, got, tc.want)
		}
	}
}
