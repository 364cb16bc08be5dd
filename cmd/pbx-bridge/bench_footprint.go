package main

import (
	"context"
	"fmt"
	"time"
)

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
