package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestGapDeeperThanOneScan: a PBX that serves one record a page and a gap
// of four times the pages one scan may read. A scan cut at its page limit
// must not move the cursor past the records it did not reach: every record
// arrives, exactly once, oldest first.
func TestGapDeeperThanOneScan(t *testing.T) {
	const gap, pages = 160, 40
	h := startHostile(t, nil, func(sim *pbxtest.Server, cfg *bridge.Config) {
		sim.SetPageCap(1, false)
		cfg.CatchupMaxPages = pages
	}, "1001")
	h.online(t, "1001", 1)
	recs := makeGap(t, h.sim, "1001", gap)
	waitFor(t, "every record in the stream", 60*time.Second, func() bool {
		return streamCount(t, h.nc, "pbx.1001.cdr.created") >= gap
	})
	// The last catch-up has ended once the extension answers queries
	// again after it; the stream then holds all it will.
	waitFor(t, "the catch-up done", 30*time.Second, func() bool {
		return metricSum(metrics(h.b.Bridge), "pbx_bridge_catchup_records_total") >= gap
	})
	got := readRecords(t, h.nc, "1001")
	if want := wantOrder(recs); !slices.Equal(got, want) {
		t.Fatalf("the stream holds %d record events, want %d in id order; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []storedRecord) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
