package bridge

import (
	"sort"
	"strings"
	"testing"
	"time"
)

// samples gathers m's series of the per-extension metrics as
// `name{label="value",...}` -> value, labels sorted by name.
func samples(t *testing.T, m *metrics) map[string]float64 {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		switch f.GetName() {
		case "pbx_bridge_session_state", "pbx_bridge_catchup_records_total", "pbx_bridge_catchup_lag_seconds",
			"pbx_bridge_reconnects_total", "pbx_bridge_cursor_resets_total":
		default:
			continue
		}
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(labels)
			v := s.GetGauge().GetValue() + s.GetCounter().GetValue()
			out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

// TestMetricsWithoutExtensionLabel: by default the per-extension series
// are the bridge's totals: how many extensions are in each state (the sum
// over extensions of the per-extension gauge), records, reconnects and
// resets summed, the largest lag, and no "ext" label anywhere.
func TestMetricsWithoutExtensionLabel(t *testing.T) {
	m := newMetrics(false)
	if got := samples(t, m); got[`pbx_bridge_session_state{state="online"}`] != 0 || len(got) != 9 {
		t.Errorf("before any extension: %v, want the 5 states, the lag and the 3 counters, all at 0", got)
	}
	m.setState("1001", "", stateConnecting)
	m.setState("1002", "", stateConnecting)
	m.setState("1003", "", stateConnecting)
	m.setState("1001", stateConnecting, stateOnline)
	m.setState("1002", stateConnecting, stateOnline)
	m.setState("1002", stateOnline, stateOnline) // a new reason, the same state
	m.setState("1003", stateConnecting, stateOffline)
	m.catchup("1001", 5, 3*time.Second)
	m.catchup("1002", 2, 7*time.Second)
	m.catchup("1002", 1, time.Second) // its last catch-up is what counts
	m.reconnect("1001")
	m.reconnect("1003")
	m.cursorReset("1002")
	want := map[string]float64{
		`pbx_bridge_session_state{state="connecting"}`:   0,
		`pbx_bridge_session_state{state="online"}`:       2,
		`pbx_bridge_session_state{state="offline"}`:      1,
		`pbx_bridge_session_state{state="reconnecting"}`: 0,
		`pbx_bridge_session_state{state="stopped"}`:      0,
		`pbx_bridge_catchup_records_total{}`:             8,
		`pbx_bridge_catchup_lag_seconds{}`:               3,
		`pbx_bridge_reconnects_total{}`:                  2,
		`pbx_bridge_cursor_resets_total{}`:               1,
	}
	checkSamples(t, samples(t, m), want)

	// 1001 stops and is removed: it leaves the states and the lag.
	m.setState("1001", stateOnline, stateStopped)
	want[`pbx_bridge_session_state{state="online"}`] = 1
	want[`pbx_bridge_session_state{state="stopped"}`] = 1
	checkSamples(t, samples(t, m), want)
	m.forget("1001", stateStopped)
	want[`pbx_bridge_session_state{state="stopped"}`] = 0
	want[`pbx_bridge_catchup_lag_seconds{}`] = 1
	checkSamples(t, samples(t, m), want)
}

// TestMetricsPerExtension: metrics.per_extension keeps one series per
// extension, as before the key existed, until the extension is removed.
func TestMetricsPerExtension(t *testing.T) {
	m := newMetrics(true)
	m.setState("1001", "", stateConnecting)
	m.setState("1001", stateConnecting, stateOnline)
	m.setState("1002", "", stateConnecting)
	m.catchup("1001", 5, 3*time.Second)
	m.reconnect("1002")
	m.cursorReset("1001")
	m.setState("1003", "", stateConnecting)
	m.catchup("1003", 1, time.Second)
	m.reconnect("1003")
	m.cursorReset("1003")
	m.forget("1003", stateConnecting) // removed: its series go
	want := map[string]float64{
		`pbx_bridge_session_state{ext="1001",state="online"}`:     1,
		`pbx_bridge_session_state{ext="1001",state="connecting"}`: 0,
		`pbx_bridge_session_state{ext="1002",state="connecting"}`: 1,
		`pbx_bridge_catchup_records_total{ext="1001"}`:            5,
		`pbx_bridge_catchup_lag_seconds{ext="1001"}`:              3,
		`pbx_bridge_reconnects_total{ext="1002"}`:                 1,
		`pbx_bridge_cursor_resets_total{ext="1001"}`:              1,
	}
	got := samples(t, m)
	checkSamples(t, got, want)
	if len(got) != 2*len(sessionStates)+4 {
		t.Errorf("%d series, want %d: %v", len(got), 2*len(sessionStates)+4, got)
	}
}

func checkSamples(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if !t.Failed() {
		return
	}
	t.Logf("all series: %v", got)
}
