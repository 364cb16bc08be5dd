package integration

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
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
func readSimOutput(b *testing.B, r io.Reader, n int) (url, caFile string, secrets map[string]string) {
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
