package integration

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// TestIdleExtensionFootprint: an idle online extension costs one goroutine
// (its socket's reader: the supervisor runs only while there is work) with
// an 8 KiB stack, and heap and stacks together stay under 32 KiB. The
// simulator runs in a process of its own (pbx-bridge sim), so that what is
// measured is the bridge's; the figures are what extensions added after
// the first ones cost, so that the bridge's fixed costs drop out.
func TestIdleExtensionFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("logs in 300 extensions")
	}
	const first, more = 100, 200
	var numbers []string
	for i := range first + more {
		numbers = append(numbers, fmt.Sprint(30000+i))
	}
	sim := exec.Command(binary(t), "sim", "--listen", "127.0.0.1:0", "--extensions", strings.Join(numbers, ","))
	out, err := sim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Process.Kill(); _ = sim.Wait() })
	url, caFile, secrets := readSimOutput(t, out, first+more)

	ns := startNATS(t, t.TempDir(), -1)
	nc := connect(t, ns.ClientURL())
	online, _ := nc.SubscribeSync("pbx.*.session.online")
	_ = online.SetPendingLimits(-1, -1)
	// One PBX request at a time: one pooled connection (two goroutines)
	// whatever the number of extensions.
	cfg := bridge.Config{PBX: pbx.Config{URL: url, CAFile: caFile}, Logger: slogDiscard(), PBXRate: 100000, PBXConcurrency: 1}
	for _, n := range numbers[:first] {
		cfg.Extensions = append(cfg.Extensions, bridge.Credential{Username: n, Secret: secrets[n]})
	}
	b := runBridge(t, nc, cfg)
	awaitOnline := func(n int) {
		t.Helper()
		for i := range n {
			if _, err := online.NextMsg(30 * time.Second); err != nil {
				t.Fatalf("%d of %d online: %v", i, n, err)
			}
		}
	}
	awaitOnline(first)
	before, g0 := settledStats(t)
	for _, n := range numbers[first:] {
		if err := b.AddExtension(bridge.Credential{Username: n, Secret: secrets[n]}); err != nil {
			t.Fatal(err)
		}
	}
	awaitOnline(more)
	after, g := settledStats(t)
	stacks := float64(after.StackInuse-before.StackInuse) / more / 1024
	heap := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / more / 1024
	t.Logf("each idle extension: %.2f goroutines, %.1f KiB of stack, %.1f KiB of heap", float64(g-g0)/more, stacks, heap)
	if g-g0 != more {
		t.Errorf("%d goroutines for %d idle extensions more, want one each (the socket's reader)", g-g0, more)
	}
	if raceEnabled {
		t.Log("race detector on: its stacks are twice as large; sizes not checked")
		return
	}
	if stacks > 9 {
		t.Errorf("%.1f KiB of stack per idle extension, want one 8 KiB stack", stacks)
	}
	if heap+stacks > 32 {
		t.Errorf("%.1f KiB of heap and stacks per idle extension, want at most 32", heap+stacks)
	}
}

// settledStats returns the memory statistics after a GC, and the number of
// goroutines, once that number has held for 200 ms: the logins' and
// catch-ups' goroutines are gone by then. It fails with the numbers last
// seen if it does not settle.
func settledStats(t *testing.T) (runtime.MemStats, int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	g, same := runtime.NumGoroutine(), 0
	for same < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("the goroutines did not settle: %d, then %d", g, runtime.NumGoroutine())
		}
		time.Sleep(20 * time.Millisecond)
		if n := runtime.NumGoroutine(); n == g {
			same++
		} else {
			g, same = n, 0
		}
	}
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m, g
}
