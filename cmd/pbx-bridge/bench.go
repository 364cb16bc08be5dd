package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/bridge/natsembed"
)

// benchOptions are the sizes of a bench run. The defaults finish in a few
// minutes on 2 cores.
type benchOptions struct {
	small, large int           // figure 3: idle online extensions
	work         int           // figures 1, 2 and 6: extensions notified
	push         int           // figure 1: notifications pushed
	latencyFor   time.Duration // figure 2: per offered rate
	queryFor     time.Duration // figure 4: per concurrency
	gap          int           // figure 5: records missed by one extension
	calls        int           // figure 6: calls, one at a time
	relogins     int           // figure 6: logins again
	loginRate    float64       // the bridge's PBX request limit in figure 3
	concurrency  int           // the bridge's PBX requests at once
	perExtension bool          // the bridge's metrics.per_extension
	live         liveOptions   // figure 7
	jsonFile     string
	profileDir   string
	figures      map[string]bool // which to measure
}

// wants reports whether any of the figures is to be measured.
func (o benchOptions) wants(figures ...string) bool {
	for _, f := range figures {
		if o.figures[f] {
			return true
		}
	}
	return false
}

// Where each group of extensions lives on the simulator.
const (
	smallFrom  = 20000
	workFrom   = 50000
	queryExt   = "60000" // the bridge's, for cdr.query
	directExt  = "60001" // the bench's own login, for the same query made directly
	catchupExt = "60002"
	largeFrom  = 100000
	// workRate is the bridge's PBX request limit outside figure 3: high
	// enough not to be what figure 4 measures.
	workRate = 100000
)

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) >= 2 && args[0] == "--role" {
		if args[1] != "bridge" {
			fmt.Fprintf(stderr, "pbx-bridge bench: unknown role %q\n", args[1])
			return errUsage
		}
		return benchBridgeChild(ctx, args[2:], os.Stdin, stdout, stderr)
	}
	fs := newFlags("bench", stderr)
	var o benchOptions
	fs.IntVar(&o.small, "footprint-small", 1000, "figure 3: idle online extensions, first size")
	fs.IntVar(&o.large, "footprint-large", 10000, "figure 3: idle online extensions, second size (at most 100000)")
	fs.IntVar(&o.work, "extensions", 100, "figures 1, 2 and 6: extensions the simulator notifies (at most 10000)")
	fs.IntVar(&o.push, "push", 50000, "figure 1: notifications the simulator pushes as fast as it can")
	fs.DurationVar(&o.latencyFor, "latency-duration", 5*time.Second, "figure 2: how long each offered rate lasts")
	fs.DurationVar(&o.queryFor, "query-duration", 3*time.Second, "figure 4: how long each concurrency lasts")
	fs.IntVar(&o.gap, "gap", 10000, "figure 5: records one extension missed")
	fs.IntVar(&o.calls, "calls", 100, "figure 6: calls made one at a time")
	fs.IntVar(&o.relogins, "relogins", 50, "figure 6: extensions asked to log in again")
	fs.Float64Var(&o.loginRate, "login-rate", 5000, "figure 3: the bridge's PBX request limit (requests/s)")
	fs.IntVar(&o.concurrency, "concurrency", 32, "the bridge's PBX requests at once")
	fs.Float64Var(&o.live.rate, "live-rate", 1000, "figure 7: live calls started a second")
	fs.DurationVar(&o.live.duration, "live-duration", 3*time.Second, "figure 7: how long calls are started (after a warm-up of 0.5s)")
	fs.DurationVar(&o.live.ring, "live-ring", 200*time.Millisecond, "figure 7: how long each call rings")
	fs.DurationVar(&o.live.talk, "live-talk", 800*time.Millisecond, "figure 7: how long each call talks once answered")
	fs.IntVar(&o.live.exts, "live-extensions", 0, "figure 7: extensions the calls use (0: twice the calls live at once)")
	fs.BoolVar(&o.perExtension, "per-extension-metrics", false, "run the bridge with metrics.per_extension: true")
	fs.StringVar(&o.jsonFile, "json", "", "also write the figures as JSON to this file")
	fs.StringVar(&o.profileDir, "profile-dir", "", "write the bridge's heap and CPU profiles here")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up after this long")
	figures := fs.String("figures", "1,2,3,4,5,6,7", "the figures to measure")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	o.figures = map[string]bool{}
	for _, f := range strings.Split(*figures, ",") {
		o.figures[strings.TrimSpace(f)] = true
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(stderr, "pbx-bridge bench: %v\n", err)
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	r := &benchRun{opts: o, log: stderr}
	rep, err := r.run(ctx, "pbx-bridge bench "+strings.Join(args, " "))
	if rep != nil {
		rep.print(stdout)
		if o.jsonFile != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(o.jsonFile, append(b, '\n'), 0o644); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return err
}

func (o benchOptions) check() error {
	switch {
	case o.small < 1 || o.small > workFrom-smallFrom:
		return fmt.Errorf("--footprint-small must be 1..%d", workFrom-smallFrom)
	case o.large < 1 || o.large > maxExtensionRange:
		return fmt.Errorf("--footprint-large must be 1..%d", maxExtensionRange)
	case o.work < 1 || o.work > 10000:
		return errors.New("--extensions must be 1..10000")
	case o.push < 1 || o.push > maxPush, o.gap < 1 || o.gap > maxPush:
		return fmt.Errorf("--push and --gap must be 1..%d", maxPush)
	case o.calls < 1 || o.relogins < 0 || o.relogins > o.small:
		return errors.New("--calls must be at least 1, --relogins 0..--footprint-small")
	case o.latencyFor <= 0 || o.queryFor <= 0 || o.loginRate <= 0 || o.concurrency < 1:
		return errors.New("durations, --login-rate and --concurrency must be positive")
	}
	return o.live.check()
}

// benchRun is one run of the bench: a NATS server in this process, the
// simulator and the bridge in processes of their own.
type benchRun struct {
	opts benchOptions
	log  io.Writer
	dir  string
	ns   *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	sim  *simChild
	rep  *benchReport
	// small is figure 3's first size, for the marginal cost per extension
	// between the two sizes.
	small footprintResult
}

func (r *benchRun) run(ctx context.Context, command string) (*benchReport, error) {
	o := r.opts
	start := time.Now()
	r.rep = &benchReport{Command: command, Machine: thisMachine(), Started: start.UTC().Format(time.RFC3339)}
	dir, err := os.MkdirTemp("", "pbx-bridge-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	r.dir = dir
	if r.ns, err = natsembed.Start("127.0.0.1:0", dir+"/nats"); err != nil {
		return nil, err
	}
	defer r.ns.Shutdown()
	if r.nc, err = nats.Connect(r.ns.ClientURL(), nats.Name("pbx-bridge bench")); err != nil {
		return nil, err
	}
	defer r.nc.Close()
	if r.js, err = jetstream.New(r.nc); err != nil {
		return nil, err
	}
	exts := fmt.Sprintf("%d-%d,%d-%d,%s-%s,%d-%d,%d-%d", smallFrom, smallFrom+o.small-1, workFrom, workFrom+o.work-1,
		queryExt, catchupExt, liveFrom, liveFrom+o.live.extensions()-1, largeFrom, largeFrom+o.large-1)
	r.progress("starting the simulator (%s)", exts)
	if r.sim, err = startSimChild(ctx, exts, dir+"/ca.pem"); err != nil {
		return nil, err
	}
	defer r.sim.stop()
	secrets, err := r.sim.secrets(ctx)
	if err != nil {
		return nil, err
	}
	steps := []struct {
		name string
		want bool
		run  func(context.Context, map[string]string) error
	}{
		{"figure 3, " + strconv.Itoa(o.small) + " extensions, and figure 6, logins", o.wants("3", "6"), func(ctx context.Context, s map[string]string) error {
			small, err := r.footprint(ctx, s, smallFrom, o.small, o.relogins)
			r.small = small
			return err
		}},
		{"figure 3, " + strconv.Itoa(o.large) + " extensions", o.wants("3"), func(ctx context.Context, s map[string]string) error {
			large, err := r.footprint(ctx, s, largeFrom, o.large, 0)
			if err == nil && r.small.n > 0 {
				r.marginal(r.small, large)
			}
			return err
		}},
		{"figures 1, 2, 4, 5, and 6: calls", o.wants("1", "2", "4", "5", "6"), r.work},
		{"figure 7: live calls", o.wants("7"), r.live},
	}
	for _, st := range steps {
		if !st.want {
			continue
		}
		r.progress("%s", st.name)
		if err := st.run(ctx, secrets); err != nil {
			r.rep.Seconds = math.Round(time.Since(start).Seconds())
			r.rep.Machine.LoadAfter = loadAverage()
			return r.rep, fmt.Errorf("%s: %w", st.name, err)
		}
	}
	r.rep.Seconds = math.Round(time.Since(start).Seconds())
	r.rep.Machine.LoadAfter = loadAverage()
	return r.rep, nil
}

func (r *benchRun) progress(format string, args ...any) {
	fmt.Fprintf(r.log, "bench: "+format+"\n", args...)
}

// childOptions is a bridge child serving exts.
func (r *benchRun) childOptions(name string, secrets map[string]string, exts []string, rate float64) bridgeChildOptions {
	mine := make(map[string]string, len(exts))
	for _, e := range exts {
		mine[e] = secrets[e]
	}
	return bridgeChildOptions{natsURL: r.ns.ClientURL(), pbxURL: r.sim.url, caFile: r.sim.caFile, secrets: mine,
		rate: rate, concurrency: r.opts.concurrency, perExtensionMetrics: r.opts.perExtension, dir: r.dir, name: name}
}

// profile asks the child for a profile into the profile directory, if any.
func (r *benchRun) profile(ctx context.Context, c *bridgeChild, kind, name string) {
	if r.opts.profileDir == "" {
		return
	}
	path := r.opts.profileDir + "/" + name
	if _, err := c.ask(ctx, kind+" "+path); err != nil {
		r.progress("profile %s: %v", path, err)
	}
}

// numbers returns n extension numbers from first.
func numbers(first, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(first + i)
	}
	return out
}
