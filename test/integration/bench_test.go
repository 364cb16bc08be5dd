package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// BenchmarkCallToRecord measures the whole pipeline per call: the PBX's
// 20049 notification, cdr.changed, the catch-up query, cdr.created
// acknowledged by JetStream, as seen by a subscriber. It reports calls/s.
func BenchmarkCallToRecord(b *testing.B) {
	for _, js := range []bool{true, false} {
		b.Run(fmt.Sprintf("jetstream=%v", js), func(b *testing.B) {
			ns := startNATS(b, b.TempDir(), -1)
			sim, secrets := startPBX(b, "1001", "1002", "1003", "1004")
			nc := connect(b, ns.ClientURL())
			got := make(chan struct{}, 1<<16)
			sub, err := nc.Subscribe("pbx.*.cdr.created", func(*nats.Msg) { got <- struct{}{} })
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Unsubscribe()
			_ = sub.SetPendingLimits(-1, -1)
			online, _ := nc.SubscribeSync("pbx.*.session.online")
			cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
			cfg.Logger = slogDiscard()
			cfg.JetStream.Disabled = !js
			runBridge(b, nc, cfg)
			for i := 0; i < 4; i++ {
				if _, err := online.NextMsg(10 * time.Second); err != nil {
					b.Fatal(err)
				}
			}
			exts := []string{"1001", "1002", "1003", "1004"}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := sim.Call(exts[i%4], pbxtest.Call{Kind: pbxtest.Incoming, TalkDuration: 1}); err != nil {
					b.Fatal(err)
				}
			}
			for i := 0; i < b.N; i++ {
				select {
				case <-got:
				case <-time.After(30 * time.Second):
					b.Fatalf("%d of %d records arrived", i, b.N)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
		})
	}
}

// BenchmarkCDRQuery measures a cdr.query round trip (NATS request, PBX
// query, reply) and reports its p50 and p99.
func BenchmarkCDRQuery(b *testing.B) {
	ns := startNATS(b, b.TempDir(), -1)
	sim, secrets := startPBX(b, "1001")
	for i := 0; i < 100; i++ {
		if _, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Missed, Silent: true}); err != nil {
			b.Fatal(err)
		}
	}
	nc := connect(b, ns.ClientURL())
	online, _ := nc.SubscribeSync("pbx.1001.session.online")
	cfg := fastConfig(sim, secrets, testLogger(&syncBuffer{}))
	cfg.Logger = slogDiscard()
	runBridge(b, nc, cfg)
	if _, err := online.NextMsg(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		m, err := nc.Request("pbx.1001.cdr.query", []byte(`{"size":20}`), 10*time.Second)
		if err != nil || m.Header.Get("Nats-Service-Error-Code") != "" {
			b.Fatalf("request: %v %v", err, m)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkExtensionFootprint logs in 500 extensions of a simulator that
// runs in another process (pbx-bridge sim), so that only the bridge is
// measured, and reports the heap and goroutines each extension costs once
// online. b.N is ignored beyond the first round: the figure is per extension.
func BenchmarkExtensionFootprint(b *testing.B) {
	const n = 500
	var numbers []string
	for i := 0; i < n; i++ {
		numbers = append(numbers, fmt.Sprint(10000+i))
	}
	sim := exec.Command(binary(b), "sim", "--listen", "127.0.0.1:0", "--extensions", strings.Join(numbers, ","))
	out, err := sim.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sim.Process.Kill(); _ = sim.Wait() }()
	url, caFile, secrets := readSimOutput(b, out, n)

	ns := startNATS(b, b.TempDir(), -1)
	nc := connect(b, ns.ClientURL())
	online, _ := nc.SubscribeSync("pbx.*.session.online")
	_ = online.SetPendingLimits(-1, -1)
	cfg := bridge.Config{
		PBX:            pbx.Config{URL: url, CAFile: caFile},
		Logger:         slogDiscard(),
		PBXRate:        2000,
		PBXConcurrency: 32,
	}
	for _, num := range numbers {
		cfg.Extensions = append(cfg.Extensions, bridge.Credential{Username: num, Secret: secrets[num]})
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	b.ResetTimer()
	runBridge(b, nc, cfg)
	for i := 0; i < n; i++ {
		if _, err := online.NextMsg(60 * time.Second); err != nil {
			b.Fatalf("%d of %d online: %v", i, n, err)
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/ext")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/ext")
}

// readSimOutput reads the URL, CA file and secrets `pbx-bridge sim` prints.
func readSimOutput(b testing.TB, r io.Reader, n int) (url, caFile string, secrets map[string]string) {
	secrets = map[string]string{}
	sc := bufio.NewScanner(r)
	var user string
	for sc.Scan() && len(secrets) < n {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "url:") && url == "":
			url = strings.TrimSpace(strings.TrimPrefix(line, "url:"))
		case strings.HasPrefix(line, "ca_file:") && caFile == "":
			caFile = strings.TrimSpace(strings.TrimPrefix(line, "ca_file:"))
		case strings.HasPrefix(line, "- username:"):
			user = strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "- username:")), `"`)
		case strings.HasPrefix(line, "secret:"):
			secrets[user] = strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "secret:")), `"`)
		}
	}
	if url == "" || len(secrets) < n {
		b.Fatalf("sim output: url %q, %d secrets", url, len(secrets))
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	return url, caFile, secrets
}

// BenchmarkCatchupGap measures catch-up after a gap of b.N records of one
// extension (stored without notifications, then one with), the PBX serving
// pages of 100: from the notification to the last cdr.created acknowledged
// by JetStream, as a subscriber sees it. It reports records/s;
// -benchtime=10000x is the gap of docs/benchmarks.md.
func BenchmarkCatchupGap(b *testing.B) {
	ns := startNATS(b, b.TempDir(), -1)
	sim, secrets := startPBX(b, "1001")
	nc := connect(b, ns.ClientURL())
	cfg := fastConfig(sim, secrets, slogDiscard())
	online, _ := nc.SubscribeSync("pbx.1001.session.online")
	runBridge(b, nc, cfg)
	if _, err := online.NextMsg(10 * time.Second); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "1001 subscribed", 10*time.Second, func() bool { return len(sim.TopicLists("1001")) >= 1 })
	got := make(chan struct{}, b.N)
	sub, err := nc.Subscribe("pbx.1001.cdr.created", func(*nats.Msg) { got <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	for i := 0; i < b.N-1; i++ {
		if _, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, TalkDuration: 1 + i%60, Silent: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if _, err := sim.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, TalkDuration: 1}); err != nil {
		b.Fatal(err)
	}
	var first time.Time
	for i := 0; i < b.N; i++ {
		select {
		case <-got:
		case <-time.After(60 * time.Second):
			b.Fatalf("%d of %d records arrived", i, b.N)
		}
		if i == 0 {
			first = time.Now()
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
	if b.N > 1 {
		// From the first record to the last: the publishes, after the scan.
		b.ReportMetric(float64(b.N-1)/time.Since(first).Seconds(), "published-records/s")
	}
}

// TestBenchCommand runs `pbx-bridge bench` at tiny sizes: every figure of
// the table is measured, next to its limit where it has one, and --json
// writes the same. (The figures themselves are docs/benchmarks.md's, from
// the default sizes: a test on a shared machine asserts no speed.)
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench")
	}
	out := filepath.Join(t.TempDir(), "bench.json")
	cmd := exec.Command(binary(t), "bench", "--footprint-small", "30", "--footprint-large", "60", "--extensions", "4",
		"--push", "400", "--latency-duration", "300ms", "--query-duration", "300ms", "--gap", "300", "--calls", "4",
		"--relogins", "3", "--json", out, "--timeout", "3m")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Machine struct{ CPUs int } `json:"machine"`
		Figures []struct {
			Figure    string  `json:"figure"`
			Name      string  `json:"name"`
			LimitName string  `json:"limit_name"`
			Value     float64 `json:"value"`
			Limit     float64 `json:"limit"`
		} `json:"figures"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Machine.CPUs < 1 {
		t.Errorf("no machine in %s", raw)
	}
	seen, limits := map[string]int{}, 0
	for _, f := range rep.Figures {
		if f.LimitName != "" {
			limits++
		}
		seen[f.Figure]++
		// A marginal figure ("each extension from N to M") is the
		// difference of two children's growth, and at the test's few
		// extensions RSS noise can make it negative (CI: -45 KiB).
		marginal := strings.Contains(f.Name, "each extension from")
		if f.Value < 0 && !marginal || f.LimitName != "" && f.Limit <= 0 {
			t.Errorf("figure %s %q: value %v, limit %v %q", f.Figure, f.Name, f.Value, f.Limit, f.LimitName)
		}
		if !strings.Contains(stdout.String(), f.Name) {
			t.Errorf("figure %s %q is not in the table:\n%s", f.Figure, f.Name, stdout.String())
		}
	}
	if limits == 0 {
		t.Errorf("no figure has a limit: %s", raw)
	}
	for _, fig := range []string{"1", "2", "3", "4", "5", "6"} {
		if seen[fig] == 0 {
			t.Errorf("no figure %s in %s", fig, raw)
		}
	}
}
