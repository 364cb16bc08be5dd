package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// typeRecordStatus is the notification the simulator pushes for figures 1
// and 2: "state only" to the SDK, a notify.record_status event to the
// bridge, and no PBX request.
const typeRecordStatus = pbx.TypeRecordStatus

// footprint is figure 3 for n idle online extensions from first, and, with
// relogins, figure 6's requests per login.
func (r *benchRun) footprint(ctx context.Context, secrets map[string]string, first, n, relogins int) (footprintResult, error) {
	o := r.opts
	exts := numbers(first, n)
	online, err := watch(r.nc, "pbx.*.session.online")
	if err != nil {
		return footprintResult{}, err
	}
	defer online.stop()
	before, err := r.sim.requests(ctx)
	if err != nil {
		return footprintResult{}, err
	}
	c, err := startBridgeChild(ctx, r.childOptions(fmt.Sprintf("footprint-%d", n), secrets, exts, o.loginRate))
	if err != nil {
		return footprintResult{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.kill()
		}
	}()
	if err := online.awaitEach(ctx, fmt.Sprintf("%d extensions online", n), exts, 1, time.Minute, 10*time.Minute); err != nil {
		return footprintResult{}, err
	}
	_, _, allOnline, _ := online.snapshot()
	took := allOnline.Sub(c.started)
	after, err := r.sim.requests(ctx)
	if err != nil {
		return footprintResult{}, err
	}
	d := deltaOf(before, after)
	// Idle: whatever the logins left behind settles (timers, the
	// connection pool), as it would in an hour.
	time.Sleep(2 * time.Second)
	st, err := c.stats(ctx)
	if err != nil {
		return footprintResult{}, err
	}
	res := footprintResult{n: n, base: c.baseline, online: st}
	r.profile(ctx, c, "heap", fmt.Sprintf("heap-%d.pprof", n))
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	label := fmt.Sprintf("%s extensions", number(float64(n)))
	api := d.loginRequests() + d.api("logout")
	r.add(benchFigure{Figure: "3", Name: "time until all online, " + label, Value: took.Seconds(), Unit: "s",
		Limit: float64(api) / o.loginRate, LimitName: fmt.Sprintf("s for its %d PBX requests at the limit of %s/s", api, number(o.loginRate)),
		Target: map[bool]string{true: "< 30 s", false: ""}[n >= 10000], Met: metIf(n >= 10000, took < 30*time.Second)})
	r.add(benchFigure{Figure: "3", Name: "PBX request rate while logging in, " + label, Value: float64(api) / took.Seconds(), Unit: "req/s",
		Limit: o.loginRate, LimitName: "req/s (the limit)",
		Note: fmt.Sprintf("%d API requests and %d socket upgrades for %d logins", api, d.api("subscribe"), n)})
	// Per extension with the bridge's fixed costs spread over them; the
	// targets are for what each extension adds (marginal, below).
	r.add(benchFigure{Figure: "3", Name: "heap per idle extension, " + label + ", fixed costs included", Value: per(st.HeapAlloc, c.baseline.HeapAlloc) / 1024, Unit: "KiB"})
	r.add(benchFigure{Figure: "3", Name: "goroutine stacks per idle extension, " + label + ", fixed costs included", Value: per(st.StackInuse, c.baseline.StackInuse) / 1024, Unit: "KiB"})
	r.add(benchFigure{Figure: "3", Name: "goroutines per idle extension, " + label + ", fixed costs included", Value: per(uint64(st.Goroutines), uint64(c.baseline.Goroutines))})
	r.add(benchFigure{Figure: "3", Name: "RSS per idle extension, " + label + ", fixed costs included", Value: per(st.RSS, c.baseline.RSS) / 1024, Unit: "KiB",
		Note: fmt.Sprintf("bridge process: %.0f MiB resident, %.0f MiB live heap, %.0f MiB stacks, %d goroutines with %d extensions online",
			float64(st.RSS)/(1<<20), float64(st.HeapAlloc)/(1<<20), float64(st.StackInuse)/(1<<20), st.Goroutines, n)})
	if relogins > 0 {
		r.add(benchFigure{Figure: "6", Name: "PBX requests per first login", Value: float64(d.loginRequests()) / float64(n), Unit: "req",
			Note: fmt.Sprintf("%d getproduct for %d logins; the socket upgrade comes on top", d.api("pbx/getproduct"), n)})
		if err := r.relogins(ctx, exts[:relogins], online); err != nil {
			return res, err
		}
	}
	stopped = true
	if err := c.stop(5 * time.Minute); err != nil {
		return res, fmt.Errorf("bridge child: %w", err)
	}
	return res, nil
}

// footprintResult is a bridge's footprint with n idle extensions online.
type footprintResult struct {
	n            int
	base, online benchStats
}

// marginal is figure 3 between the two sizes: what each extension beyond
// the first size costs, without the bridge's fixed costs (its connection
// pool to the PBX, the NATS service, the runtime).
func (r *benchRun) marginal(small, large footprintResult) {
	if large.n <= small.n {
		return
	}
	n := float64(large.n - small.n)
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / n }
	label := fmt.Sprintf("each extension from %s to %s", number(float64(small.n)), number(float64(large.n)))
	heap := per(large.online.HeapAlloc-large.base.HeapAlloc, small.online.HeapAlloc-small.base.HeapAlloc)
	g := per(uint64(large.online.Goroutines-large.base.Goroutines), uint64(small.online.Goroutines-small.base.Goroutines))
	// Stacks are allocated apart from the heap (MemStats.StackInuse, not
	// HeapAlloc) but are memory each extension holds all the same.
	stacks := per(large.online.StackInuse, small.online.StackInuse)
	r.add(benchFigure{Figure: "3", Name: "heap, " + label, Value: heap / 1024, Unit: "KiB", Target: "<= 32 KiB", Met: met(heap <= 32<<10)})
	r.add(benchFigure{Figure: "3", Name: "goroutine stacks, " + label, Value: stacks / 1024, Unit: "KiB"})
	r.add(benchFigure{Figure: "3", Name: "heap and goroutine stacks, " + label, Value: (heap + stacks) / 1024, Unit: "KiB", Target: "<= 32 KiB", Met: met(heap+stacks <= 32<<10)})
	r.add(benchFigure{Figure: "3", Name: "goroutines, " + label, Value: g, Target: "<= 2", Met: met(g <= 2)})
	r.add(benchFigure{Figure: "3", Name: "RSS, " + label, Value: per(large.online.RSS-large.base.RSS, small.online.RSS-small.base.RSS) / 1024, Unit: "KiB"})
}

func metIf(applies, ok bool) *bool {
	if !applies {
		return nil
	}
	return met(ok)
}

// relogins is figure 6's requests per login after the first: the PBX asks
// each of exts to log in again (20010).
func (r *benchRun) relogins(ctx context.Context, exts []string, online *arrivals) error {
	before, err := r.sim.requests(ctx)
	if err != nil {
		return err
	}
	for _, e := range exts {
		if err := r.sim.relogin(ctx, e); err != nil {
			return err
		}
	}
	if err := online.awaitEach(ctx, "logins again", exts, 2, time.Minute, 5*time.Minute); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // the last catch-up query after "online" is counted
	after, err := r.sim.requests(ctx)
	if err != nil {
		return err
	}
	d := deltaOf(before, after)
	n := float64(len(exts))
	v := float64(d.loginRequests()) / n
	r.add(benchFigure{Figure: "6", Name: "PBX requests per login after the first", Value: v, Unit: "req", Target: "<= 3", Met: met(v <= 3),
		Note: fmt.Sprintf("per login: %.2f login, %.2f getpersonal, %.2f getproduct, %.2f searchpersonal; the logout of the old session (%.2f) and the socket upgrade (%.2f) come on top",
			float64(d.api("login"))/n, float64(d.api("extension/getpersonal"))/n, float64(d.api("pbx/getproduct"))/n,
			float64(d.api("cdr/searchpersonal"))/n, float64(d.api("logout"))/n, float64(d.api("subscribe"))/n)})
	return nil
}

// work runs one bridge with the work extensions, the query extension and
// the catch-up extension, for figures 6 (calls), 1, 2, 4 and 5.
func (r *benchRun) work(ctx context.Context, secrets map[string]string) error {
	o := r.opts
	exts := numbers(workFrom, o.work)
	for _, e := range []string{queryExt, directExt} {
		if _, _, err := r.sim.calls(ctx, callsRequest{Ext: e, N: 100, MissedEvery: 3}); err != nil {
			return err
		}
	}
	online, err := watch(r.nc, "pbx.*.session.online")
	if err != nil {
		return err
	}
	defer online.stop()
	all := append(slices.Clone(exts), queryExt, catchupExt)
	c, err := startBridgeChild(ctx, r.childOptions("work", secrets, all, workRate))
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.kill()
		}
	}()
	if err := online.awaitEach(ctx, "the work extensions online", all, 1, time.Minute, 5*time.Minute); err != nil {
		return err
	}
	for _, step := range []struct {
		figure, name string
		run          func(context.Context, *bridgeChild, []string) error
	}{
		{"6", "requests per call", r.perCall},
		{"2", "latency", r.latency},
		{"1", "throughput", r.throughput},
		{"4", "cdr.query", r.queries},
		{"5", "catch-up", r.catchup},
	} {
		if !o.wants(step.figure) {
			continue
		}
		r.progress("  figure %s: %s", step.figure, step.name)
		if err := step.run(ctx, c, exts); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	stopped = true
	return c.stop(2 * time.Minute)
}

// extRange is exts in the --extensions syntax.
func extRange(exts []string) string { return exts[0] + "-" + exts[len(exts)-1] }

// throughput is figure 1: the simulator pushes notifications to every work
// extension as fast as it can; the limit is the same messages published
// straight into the same stream.
func (r *benchRun) throughput(ctx context.Context, c *bridgeChild, exts []string) error {
	o := r.opts
	got, err := watch(r.nc, "pbx.*.notify.record_status")
	if err != nil {
		return err
	}
	defer got.stop()
	r.profile(ctx, c, "cpu-start", "cpu-throughput.pprof")
	start := time.Now()
	res, err := r.sim.push(ctx, pushRequest{Exts: extRange(exts), Type: typeRecordStatus, Count: o.push})
	if err != nil {
		return err
	}
	waitErr := got.awaitCount(ctx, "the pushed notifications as events", o.push, 10*time.Second, 5*time.Minute)
	r.profile(ctx, c, "cpu-stop", "")
	n, _, last, _ := got.snapshot()
	if n == 0 {
		return errors.Join(errors.New("no event arrived"), waitErr)
	}
	rate := float64(n) / last.Sub(start).Seconds()
	subjects := make([]string, len(exts))
	for i, e := range exts {
		subjects[i] = "pbx." + e + ".notify.record_status"
	}
	raw, err := rawPublish(ctx, r.js, rawMessages(got.sample, subjects, o.push))
	if err != nil {
		return err
	}
	note := fmt.Sprintf("%d of %d notifications arrived as events (%d bytes each); the simulator sent at %s/s over %d sockets",
		n, o.push, len(got.sample.Data), number(float64(o.push)/res.Seconds), len(exts))
	if waitErr != nil {
		note += "; " + waitErr.Error()
	}
	r.add(benchFigure{Figure: "1", Name: "notification -> event throughput", Value: rate, Unit: "events/s",
		Limit: raw, LimitName: "msgs/s raw async JetStream publish", Target: ">= 0.50 of the limit", Met: met(rate >= raw/2), Note: note})
	return nil
}

// latency is figure 2: frame -> subscriber at two offered rates, next to
// the same messages published into the same stream at the same rate.
func (r *benchRun) latency(ctx context.Context, _ *bridgeChild, exts []string) error {
	for _, rate := range []float64{1000, 10000} {
		// A second at the rate first, not measured: the connections, the
		// stream and the runtimes settle into it.
		if err := r.pushAwaited(ctx, exts, int(rate), rate); err != nil {
			return err
		}
		got, err := watch(r.nc, "pbx.*.notify.record_status")
		if err != nil {
			return err
		}
		count := int(rate * r.opts.latencyFor.Seconds())
		if _, err := r.sim.push(ctx, pushRequest{Exts: extRange(exts), Type: typeRecordStatus, Count: count, Rate: rate}); err != nil {
			got.stop()
			return err
		}
		err = got.awaitCount(ctx, "the paced notifications as events", count, 10*time.Second, 5*time.Minute)
		got.stop()
		n, _, _, lat := got.snapshot()
		if len(lat) == 0 {
			return errors.Join(errors.New("no latency measured"), err)
		}
		raw, rerr := rawLatency(ctx, r.nc, r.js, rawMessages(got.sample, []string{"pbx.rawbench.notify.record_status"}, count), rate)
		if rerr != nil {
			return rerr
		}
		slices.Sort(lat)
		slices.Sort(raw)
		label := fmt.Sprintf("at %s events/s", number(rate))
		note := fmt.Sprintf("%d of %d events arrived", n, count)
		if err != nil {
			note += "; " + err.Error()
		}
		for _, p := range []float64{50, 99, 99.9} {
			f := benchFigure{Figure: "2", Name: fmt.Sprintf("frame -> subscriber p%g %s", p, label), Value: ms(percentile(lat, p)), Unit: "ms",
				Limit: ms(percentile(raw, p)), LimitName: "ms raw JetStream publish -> subscriber"}
			if p == 99 {
				f.Note = note
				if rate == 1000 {
					f.Target, f.Met = "< 2 ms", met(percentile(lat, p) < 2*time.Millisecond)
				}
			}
			r.add(f)
		}
	}
	return nil
}

// pushAwaited has the simulator push count notifications at rate and waits
// until they arrived as events.
func (r *benchRun) pushAwaited(ctx context.Context, exts []string, count int, rate float64) error {
	got, err := watch(r.nc, "pbx.*.notify.record_status")
	if err != nil {
		return err
	}
	defer got.stop()
	if _, err := r.sim.push(ctx, pushRequest{Exts: extRange(exts), Type: typeRecordStatus, Count: count, Rate: rate}); err != nil {
		return err
	}
	return got.awaitCount(ctx, "the warm-up notifications as events", count, 10*time.Second, 5*time.Minute)
}

// queries is figure 4: cdr.query through the bridge at concurrency 1 and
// 16, next to the same HTTPS query made straight to the simulator.
func (r *benchRun) queries(ctx context.Context, _ *bridgeChild, _ []string) error {
	secrets, err := r.sim.secrets(ctx)
	if err != nil {
		return err
	}
	cfg := pbx.Config{URL: r.sim.url, CAFile: r.sim.caFile, Username: directExt, Secret: secrets[directExt]}
	hc, err := pbx.NewHTTPClient(cfg, 16)
	if err != nil {
		return err
	}
	cfg.HTTPClient = hc
	direct, err := pbx.NewClient(cfg)
	if err != nil {
		return err
	}
	if _, err := direct.Login(ctx); err != nil {
		return err
	}
	defer func() { _ = direct.Logout(context.WithoutCancel(ctx)) }()
	viaBridge := func(ctx context.Context) error {
		m, err := r.nc.RequestWithContext(ctx, "pbx."+queryExt+".cdr.query", []byte(`{"size":20}`))
		if err == nil && m.Header.Get("Nats-Service-Error-Code") != "" {
			err = fmt.Errorf("cdr.query: %s %s", m.Header.Get("Nats-Service-Error-Code"), m.Header.Get("Nats-Service-Error"))
		}
		return err
	}
	straight := func(ctx context.Context) error {
		_, err := direct.SearchPersonal(ctx, pbx.CDRQuery{Size: 20})
		return err
	}
	for _, conc := range []int{1, 16} {
		b, err := load(ctx, conc, r.opts.queryFor, viaBridge)
		if err != nil {
			return err
		}
		d, err := load(ctx, conc, r.opts.queryFor, straight)
		if err != nil {
			return err
		}
		label := fmt.Sprintf("concurrency %d", conc)
		r.add(benchFigure{Figure: "4", Name: "cdr.query p50, " + label, Value: ms(b.p(50)), Unit: "ms", Limit: ms(d.p(50)), LimitName: "ms direct HTTPS query",
			Note: fmt.Sprintf("the bridge's own share: %.2f ms at p50, %.2f ms at p99", ms(b.p(50)-d.p(50)), ms(b.p(99)-d.p(99)))})
		r.add(benchFigure{Figure: "4", Name: "cdr.query p99, " + label, Value: ms(b.p(99)), Unit: "ms", Limit: ms(d.p(99)), LimitName: "ms direct HTTPS query"})
		r.add(benchFigure{Figure: "4", Name: "cdr.query throughput, " + label, Value: b.rate, Unit: "req/s", Limit: d.rate, LimitName: "req/s direct HTTPS query"})
	}
	return nil
}

// loadResult is what a closed-loop load measured.
type loadResult struct {
	lat  []time.Duration // sorted
	rate float64
}

func (l loadResult) p(q float64) time.Duration { return percentile(l.lat, q) }

// load runs call from conc goroutines in a closed loop for d.
func load(ctx context.Context, conc int, d time.Duration, call func(context.Context) error) (loadResult, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(end) && ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				t0 := time.Now()
				err := call(cctx)
				cancel()
				if err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	slices.Sort(lat)
	return loadResult{lat: lat, rate: float64(len(lat)) / time.Since(start).Seconds()}, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// catchup is figure 5: one extension misses a gap of records (stored
// without notifications, then one with), and catches up; the limit is the
// same messages published straight into the same stream.
func (r *benchRun) catchup(ctx context.Context, c *bridgeChild, _ []string) error {
	o := r.opts
	created, err := watch(r.nc, "pbx."+catchupExt+".cdr.created")
	if err != nil {
		return err
	}
	defer created.stop()
	// A first call gives the extension a cursor at a real record.
	if _, _, err := r.sim.calls(ctx, callsRequest{Ext: catchupExt, N: 1}); err != nil {
		return err
	}
	if err := created.awaitCount(ctx, "the first call's cdr.created", 1, 10*time.Second, 30*time.Second); err != nil {
		return err
	}
	created.reset()
	before, err := r.sim.requests(ctx)
	if err != nil {
		return err
	}
	if _, _, err := r.sim.calls(ctx, callsRequest{Ext: catchupExt, N: o.gap, NotifyLast: true}); err != nil {
		return err
	}
	notified := time.Now() // the last call's notification went out before the answer
	// The scan is over when the first record arrives: the profile is of
	// the publishes.
	waitErr := created.awaitCount(ctx, "the gap's first cdr.created", 1, 30*time.Second, 10*time.Minute)
	if waitErr == nil {
		r.profile(ctx, c, "cpu-start", "cpu-catchup.pprof")
		waitErr = created.awaitCount(ctx, "the gap as cdr.created", o.gap, 30*time.Second, 10*time.Minute)
		r.profile(ctx, c, "cpu-stop", "")
	}
	if waitErr != nil {
		return waitErr
	}
	n, first, last, _ := created.snapshot()
	after, err := r.sim.requests(ctx)
	if err != nil {
		return err
	}
	pages := deltaOf(before, after).api("cdr/searchpersonal")
	publishRate := float64(n-1) / last.Sub(first).Seconds()
	total := float64(n) / last.Sub(notified).Seconds()
	raw, err := rawPublish(ctx, r.js, rawMessages(created.sample, []string{"pbx.rawbench.cdr.created"}, o.gap))
	if err != nil {
		return err
	}
	r.add(benchFigure{Figure: "5", Name: fmt.Sprintf("catch-up into JetStream, %s-record gap, first to last record", number(float64(o.gap))),
		Value: publishRate, Unit: "records/s", Limit: raw, LimitName: "msgs/s raw async JetStream publish",
		Target: ">= 20,000/s and >= 0.50 of the limit", Met: met(publishRate >= 20000 && publishRate >= raw/2),
		Note: fmt.Sprintf("%d bytes per cdr.created", len(created.sample.Data))})
	r.add(benchFigure{Figure: "5", Name: "catch-up, notification to last record", Value: total, Unit: "records/s",
		Note: fmt.Sprintf("%.2f s: %d searchpersonal pages of %d records first (the scan reaches the cursor newest first), then the publishes",
			last.Sub(notified).Seconds(), pages, pbx.MaxCDRSize)})
	return nil
}
