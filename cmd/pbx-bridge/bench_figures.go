package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// typeRecordStatus is the notification the simulator pushes for figures 1
// and 2: "state only" to the SDK, a notify.record_status event to the
// bridge, and no PBX request.
const typeRecordStatus = pbx.TypeRecordStatus

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
