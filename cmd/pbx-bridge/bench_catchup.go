package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

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
