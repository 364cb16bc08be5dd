package main

import (
	"context"
	"fmt"
	"time"
)

// perCall is figure 6's searchpersonal queries per call: calls one at a
// time, each awaited as cdr.created.
func (r *benchRun) perCall(ctx context.Context, _ *bridgeChild, exts []string) error {
	created, err := watch(r.nc, "pbx.*.cdr.created")
	if err != nil {
		return err
	}
	defer created.stop()
	// Each extension's first call: its cursor is then a record on the PBX,
	// as it is for every call after an extension's first. (With no
	// history, the first call's page is shorter than asked for without
	// reaching a cursor record, and the scan asks a second page to tell the
	// end of the list from a PBX that serves fewer records a page.)
	warm := exts[:min(len(exts), r.opts.calls)]
	before, err := r.sim.requests(ctx)
	if err != nil {
		return err
	}
	for _, ext := range warm {
		want := created.count(ext) + 1
		if _, _, err := r.sim.calls(ctx, callsRequest{Ext: ext, N: 1}); err != nil {
			return err
		}
		if err := created.awaitEach(ctx, "the first call's cdr.created", []string{ext}, want, 10*time.Second, 30*time.Second); err != nil {
			return err
		}
	}
	mid, err := r.sim.requests(ctx)
	if err != nil {
		return err
	}
	firstCalls := deltaOf(before, mid).api("cdr/searchpersonal")
	before = mid
	for i := 0; i < r.opts.calls; i++ {
		ext := exts[i%len(exts)]
		want := created.count(ext) + 1
		if _, _, err := r.sim.calls(ctx, callsRequest{Ext: ext, N: 1}); err != nil {
			return err
		}
		if err := created.awaitEach(ctx, "the call's cdr.created", []string{ext}, want, 10*time.Second, 30*time.Second); err != nil {
			return err
		}
	}
	after, err := r.sim.requests(ctx)
	if err != nil {
		return err
	}
	d := deltaOf(before, after)
	v := float64(d.api("cdr/searchpersonal")) / float64(r.opts.calls)
	r.add(benchFigure{Figure: "6", Name: "PBX requests per call", Value: v, Unit: "req", Target: "<= 1", Met: met(v <= 1),
		Note: fmt.Sprintf("%d calls one at a time, each awaited as cdr.created: %d searchpersonal; before them, the first call of each of %d extensions without history: %d",
			r.opts.calls, d.api("cdr/searchpersonal"), len(warm), firstCalls)})
	return r.perCallInPairs(ctx, created, exts)
}

// perCallInPairs is figure 6 again with calls in pairs on one extension:
// the second is made while the first's catch-up query is under way (the
// simulator answers it 50 ms late), so that catch-up publishes both, and
// the second's 20049 needs no query of its own.
func (r *benchRun) perCallInPairs(ctx context.Context, created *arrivals, exts []string) error {
	pairs := max(1, r.opts.calls/2)
	before, err := r.sim.requests(ctx)
	if err != nil {
		return err
	}
	for i := range pairs {
		ext := exts[i%len(exts)]
		want := created.count(ext) + 2
		if _, _, err := r.sim.calls(ctx, callsRequest{Ext: ext, N: 2, DuringQueryMS: 50}); err != nil {
			return err
		}
		if err := created.awaitEach(ctx, "both calls' cdr.created", []string{ext}, want, 10*time.Second, 30*time.Second); err != nil {
			return err
		}
	}
	after, err := r.sim.requests(ctx)
	if err != nil {
		return err
	}
	q := deltaOf(before, after).api("cdr/searchpersonal")
	v := float64(q) / float64(2*pairs)
	r.add(benchFigure{Figure: "6", Name: "PBX requests per call, one during a catch-up", Value: v, Unit: "req", Target: "<= 1", Met: met(v <= 1),
		Note: fmt.Sprintf("%d pairs of calls on one extension, the second made while the first's catch-up query waits 50 ms at the PBX: %d searchpersonal", pairs, q)})
	return nil
}
