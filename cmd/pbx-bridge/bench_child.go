package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// The bench runs the bridge in a process of its own (pbx-bridge bench
// --role bridge), so that its footprint is the bridge's alone: not the NATS
// server's, nor the simulator's, nor the bench's. The child reads commands
// on stdin, one a line, and answers each with one JSON line on stdout:
//
//	stats             memory and goroutines after a GC (benchStats)
//	heap FILE         write a heap profile
//	cpu-start FILE    start a CPU profile
//	cpu-stop          stop it
//	metrics           the bridge's Prometheus counters (childLine.Metrics)
//
// Its first line is its stats before the bridge exists, the second says the
// bridge runs (with the time it started). At the end of stdin it shuts the
// bridge down (logging every extension out) and exits.

// benchStats is a process's footprint.
type benchStats struct {
	HeapAlloc  uint64 `json:"heap_alloc"` // live heap after a GC
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Goroutines int    `json:"goroutines"`
	RSS        uint64 `json:"rss"` // resident set, from /proc/self/status
}

func readStats() benchStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return benchStats{HeapAlloc: m.HeapAlloc, HeapInuse: m.HeapInuse, StackInuse: m.StackInuse,
		Goroutines: runtime.NumGoroutine(), RSS: residentBytes()}
}

// residentBytes reads VmRSS from /proc/self/status (0 where there is none).
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// childLine is one line the bridge child writes.
type childLine struct {
	Event string      `json:"event"`
	Stats *benchStats `json:"stats,omitempty"`
	// Metrics are the bridge's pbx_bridge_* samples, by series as
	// Prometheus writes it (name{labels}).
	Metrics   map[string]float64 `json:"metrics,omitempty"`
	StartedNs int64              `json:"started_ns,omitempty"`
	Error     string             `json:"error,omitempty"`
}

// benchBridgeChild is pbx-bridge bench --role bridge.
func benchBridgeChild(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("bench --role bridge", stderr)
	natsURL := fs.String("nats", "", "NATS URL")
	pbxURL := fs.String("pbx", "", "PBX URL")
	caFile := fs.String("ca-file", "", "PBX CA file")
	secretsFile := fs.String("secrets", "", "JSON file {extension: secret}")
	rate := fs.Float64("rate", 20, "PBX requests per second")
	concurrency := fs.Int("concurrency", 8, "PBX requests at once")
	perExt := fs.Bool("per-extension-metrics", false, "metrics.per_extension")
	logFile := fs.String("log", "", "log file (warnings and errors)")
	events := fs.Bool("events", false, "events.enabled: live calls from the OpenAPI event socket")
	openAPIFile := fs.String("openapi", "", `JSON file {"access_id": ..., "access_key": ...}: the PBX's OpenAPI credentials`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	creds, oa, err := childCredentials(*secretsFile, *openAPIFile)
	if err != nil {
		return err
	}
	logOut := io.Discard
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		logOut = f
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc, err := nats.Connect(*natsURL, nats.MaxReconnects(-1), nats.Name("pbx-bridge bench bridge"))
	if err != nil {
		return err
	}
	defer nc.Close()
	out := json.NewEncoder(stdout)
	base := readStats()
	if err := out.Encode(childLine{Event: "baseline", Stats: &base}); err != nil {
		return err
	}
	cfg := bridge.Config{
		PBX:            pbx.Config{URL: *pbxURL, CAFile: *caFile},
		Extensions:     creds,
		OpenAPI:        oa,
		PBXRate:        *rate,
		PBXConcurrency: *concurrency,
		Metrics:        bridge.MetricsConfig{PerExtension: *perExt},
		Events:         bridge.EventsConfig{Enabled: *events},
		Logger:         log,
		Version:        version,
	}
	b, err := bridge.New(nc, cfg)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- b.Run(runCtx) }()
	if err := out.Encode(childLine{Event: "ready", StartedNs: started.UnixNano()}); err != nil {
		return err
	}
	childCommands(stdin, out, b)
	stop()
	err = <-done
	_ = nc.Drain()
	return err
}

// childCommands answers the parent's commands until stdin ends.
func childCommands(stdin io.Reader, out *json.Encoder, b *bridge.Bridge) {
	sc := bufio.NewScanner(stdin)
	var cpu *os.File
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		var err error
		line := childLine{Event: cmd}
		switch cmd {
		case "stats":
			st := readStats()
			line.Stats = &st
		case "metrics":
			line.Metrics, err = bridgeMetrics(b)
		case "heap":
			runtime.GC()
			err = writeProfile(arg, func(w io.Writer) error { return pprof.Lookup("heap").WriteTo(w, 0) })
		case "cpu-start":
			if cpu, err = os.Create(arg); err == nil {
				err = pprof.StartCPUProfile(cpu)
			}
		case "cpu-stop":
			pprof.StopCPUProfile()
			if cpu != nil {
				err = cpu.Close()
				cpu = nil
			}
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			line.Error = err.Error()
		}
		_ = out.Encode(line)
	}
}

func writeProfile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// bridgeChild is the parent's handle on a bridge child.
type bridgeChild struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	lines    chan childLine
	exited   chan error
	baseline benchStats
	started  time.Time
}

// bridgeChildOptions is what a bridge child serves.
type bridgeChildOptions struct {
	natsURL, pbxURL, caFile string
	secrets                 map[string]string
	rate                    float64
	concurrency             int
	perExtensionMetrics     bool
	// events runs the bridge with events.enabled and the OpenAPI
	// credentials accessID and accessKey.
	events              bool
	accessID, accessKey string
	dir                 string // for the secrets and the log
	name                string
}

// startBridgeChild starts a bridge child and waits until its bridge runs.
func startBridgeChild(ctx context.Context, o bridgeChildOptions) (*bridgeChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	secretsFile := o.dir + "/" + o.name + "-secrets.json"
	raw, _ := json.Marshal(o.secrets)
	if err := os.WriteFile(secretsFile, raw, 0o600); err != nil {
		return nil, err
	}
	args := []string{"bench", "--role", "bridge", "--nats", o.natsURL, "--pbx", o.pbxURL, "--ca-file", o.caFile,
		"--secrets", secretsFile, "--rate", fmt.Sprint(o.rate), "--concurrency", fmt.Sprint(o.concurrency),
		"--log", o.dir + "/" + o.name + ".log", fmt.Sprintf("--per-extension-metrics=%v", o.perExtensionMetrics)}
	if o.events {
		// In a file, as the secrets are: not on a command line anyone may read.
		f := o.dir + "/" + o.name + "-openapi.json"
		raw, _ := json.Marshal(map[string]string{"access_id": o.accessID, "access_key": o.accessKey})
		if err := os.WriteFile(f, raw, 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--events", "--openapi", f)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &bridgeChild{cmd: cmd, stdin: stdin, lines: make(chan childLine, 4), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l childLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				c.lines <- l
			}
		}
		close(c.lines)
		c.exited <- cmd.Wait()
	}()
	first, err := c.next(ctx, 30*time.Second)
	if err != nil || first.Stats == nil {
		c.kill()
		return nil, fmt.Errorf("bridge child: no baseline: %v", err)
	}
	c.baseline = *first.Stats
	ready, err := c.next(ctx, 60*time.Second)
	if err != nil || ready.Event != "ready" {
		c.kill()
		return nil, fmt.Errorf("bridge child did not start: %v %s", err, ready.Error)
	}
	c.started = time.Unix(0, ready.StartedNs)
	return c, nil
}

func (c *bridgeChild) next(ctx context.Context, d time.Duration) (childLine, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			return l, errors.New("bridge child exited")
		}
		return l, nil
	case <-t.C:
		return childLine{}, fmt.Errorf("no answer from the bridge child within %s", d)
	case <-ctx.Done():
		return childLine{}, ctx.Err()
	}
}

// ask sends a command and returns the answer.
func (c *bridgeChild) ask(ctx context.Context, cmd string) (childLine, error) {
	if _, err := fmt.Fprintln(c.stdin, cmd); err != nil {
		return childLine{}, err
	}
	l, err := c.next(ctx, time.Minute)
	if err == nil && l.Error != "" {
		err = errors.New(l.Error)
	}
	return l, err
}

// metrics returns the bridge's pbx_bridge_* samples by series.
func (c *bridgeChild) metrics(ctx context.Context) (map[string]float64, error) {
	l, err := c.ask(ctx, "metrics")
	if err != nil {
		return nil, fmt.Errorf("bridge child metrics: %w", err)
	}
	return l.Metrics, nil
}

func (c *bridgeChild) stats(ctx context.Context) (benchStats, error) {
	l, err := c.ask(ctx, "stats")
	if err != nil || l.Stats == nil {
		return benchStats{}, fmt.Errorf("bridge child stats: %v", err)
	}
	return *l.Stats, nil
}

// stop shuts the child's bridge down (every extension logs out) and waits
// for it, for at most d; then it kills it.
func (c *bridgeChild) stop(d time.Duration) error {
	_ = c.stdin.Close()
	select {
	case err := <-c.exited:
		return err
	case <-time.After(d):
		c.kill()
		return fmt.Errorf("bridge child did not stop within %s", d)
	}
}

func (c *bridgeChild) kill() {
	_ = c.cmd.Process.Kill()
}
