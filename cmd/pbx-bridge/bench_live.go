package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// Figure 7: live calls. A bridge with events.enabled (and nothing else
// beyond its extensions) follows the simulator's OpenAPI event socket
// while the simulator makes calls at a steady rate, each ringing,
// answered and ended with its real member states; every 30011 frame's
// send time is taken just before the simulator writes it to the socket,
// and each call event's latency runs from there to its arrival at a core
// subscription of the bench. The limits are core publishes of the same
// messages on the same server: at the same rate (latency) and as fast as
// one connection goes (throughput).

// Where the live call extensions live on the simulator, and how many
// there may be (the tracker keeps at most 20,000 extensions).
const (
	liveFrom          = 70000
	maxLiveExtensions = 20000
	// signalsStream is where the bridge stores the live events (its
	// default jetstream.signals.stream).
	signalsStream = "PBX_SIGNALS"
)

// liveOptions are figure 7's sizes.
type liveOptions struct {
	rate       float64       // calls started a second
	duration   time.Duration // how long calls are started, measured
	ring, talk time.Duration // each call's
	exts       int           // extensions the calls use; 0: enough for one call each at a time
}

// extensions returns how many extensions the calls use: by default twice
// the calls live at once, so that (at 1.5 extensions a call) none is in
// two calls at once.
func (l liveOptions) extensions() int {
	if l.exts > 0 {
		return l.exts
	}
	live := l.rate * (l.ring + l.talk).Seconds()
	return min(maxLiveExtensions, max(4, int(math.Ceil(2*live))))
}

func (l liveOptions) check() error {
	switch {
	case l.rate <= 0 || l.duration <= 0 || l.ring < 0 || l.talk < 0:
		return fmt.Errorf("--live-rate and --live-duration must be positive, --live-ring and --live-talk not negative")
	case l.rate*l.duration.Seconds() > maxPush:
		return fmt.Errorf("--live-rate × --live-duration must be at most %d calls", maxPush)
	case l.exts < 0 || l.extensions() < 2 || l.extensions() > maxLiveExtensions:
		return fmt.Errorf("--live-extensions must be 2..%d (by default twice the calls live at once)", maxLiveExtensions)
	}
	return nil
}

// live is figure 7, with a bridge of its own serving the live call
// extensions.
func (r *benchRun) live(ctx context.Context, secrets map[string]string) error {
	exts := numbers(liveFrom, r.opts.live.extensions())
	online, err := watch(r.nc, "pbx.*.session.online")
	if err != nil {
		return err
	}
	defer online.stop()
	co := r.childOptions("live", secrets, exts, workRate)
	co.events, co.accessID, co.accessKey = true, r.sim.accessID, r.sim.accessKey
	c, err := startBridgeChild(ctx, co)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.kill()
		}
	}()
	if err := online.awaitEach(ctx, "the live call extensions online", exts, 1, time.Minute, 5*time.Minute); err != nil {
		return err
	}
	if err := r.awaitEventSocket(ctx); err != nil {
		return err
	}
	if err := r.liveWarmUp(ctx, exts); err != nil {
		return err
	}
	if err := r.liveMeasure(ctx, c, exts); err != nil {
		return err
	}
	stopped = true
	return c.stop(2 * time.Minute)
}

// awaitEventSocket waits until the bridge's event socket subscribed.
func (r *benchRun) awaitEventSocket(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		_, subscribed, err := r.sim.eventSockets(ctx)
		switch {
		case err != nil:
			return err
		case subscribed > 0:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the bridge's event socket did not subscribe within 1m")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// liveWarmUp makes half a second of calls at the rate, not measured (the
// connections, the stream and the runtimes settle into it, as in figure
// 2), and waits until their events stopped coming.
func (r *benchRun) liveWarmUp(ctx context.Context, exts []string) error {
	rec, err := recordLive(r.nc, liveSubjects...)
	if err != nil {
		return err
	}
	defer rec.stop()
	if _, err := r.liveLoad(ctx, exts, 500*time.Millisecond); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if n := rec.awaitQuiet(ctx, time.Second, time.Minute, nil); n == 0 {
		return fmt.Errorf("warm-up: no live event arrived from the bridge")
	}
	return nil
}

// liveLoad has the simulator make calls at the rate for d.
func (r *benchRun) liveLoad(ctx context.Context, exts []string, d time.Duration) (pbxtest.CallLoadResult, error) {
	l := r.opts.live
	return r.sim.liveCalls(ctx, liveCallsRequest{Exts: extRange(exts), Rate: l.rate, DurationMS: int(d.Milliseconds()),
		RingMS: int(l.ring.Milliseconds()), TalkMS: int(l.talk.Milliseconds())})
}

// liveMeasure is figure 7's measured run and its limits.
func (r *benchRun) liveMeasure(ctx context.Context, c *bridgeChild, exts []string) error {
	l := r.opts.live
	before, err := c.metrics(ctx)
	if err != nil {
		return err
	}
	storedBefore, err := storedCallEvents(ctx, r.js)
	if err != nil {
		return err
	}
	rec, err := recordLive(r.nc, liveSubjects...)
	if err != nil {
		return err
	}
	defer rec.stop()
	r.profile(ctx, c, "cpu-start", "cpu-live.pprof")
	res, err := r.liveLoad(ctx, exts, l.duration)
	if err != nil {
		r.profile(ctx, c, "cpu-stop", "")
		return err
	}
	want, offered := expectCallEvents(res), offeredEvents(res)
	// Every event offered, the call statuses too: a status may follow the
	// call's cdr.ended.
	rec.awaitQuiet(ctx, 5*time.Second, 2*time.Minute, func(c liveCounts) bool {
		return c.calls >= len(want) && c.cdrs >= len(res.Calls) && c.all >= offered
	})
	r.profile(ctx, c, "cpu-stop", "")
	t := tallyLive(want, rec.snapshot())
	after, err := c.metrics(ctx)
	if err != nil {
		return err
	}
	storedAfter, err := storedCallEvents(ctx, r.js)
	if err != nil {
		return err
	}
	ceil, err := r.liveLimits(ctx, t, offered, frameSpan(res))
	if err != nil {
		return err
	}
	r.addLive(res, t, offered, ceil, storedAfter-storedBefore, metricsDelta(before, after, "pbx_bridge_live_events_dropped_total"))
	return nil
}

// addLive adds figure 7's rows.
func (r *benchRun) addLive(res pbxtest.CallLoadResult, t liveTally, offered int, ceil liveCeiling, stored uint64, drops map[string]float64) {
	l := r.opts.live
	label := fmt.Sprintf("at %s calls/s", number(l.rate))
	for _, p := range []float64{50, 99, 100} {
		name := fmt.Sprintf("30011 frame -> subscriber p%g %s", p, label)
		if p == 100 {
			name = "30011 frame -> subscriber max " + label
		}
		f := benchFigure{Figure: "7", Name: name, Value: ms(percentile(t.lat, p)), Unit: "ms",
			Limit: ms(percentile(ceil.lat, p)), LimitName: "ms raw core publish -> subscriber, same rate"}
		if p == 99 {
			f.Target, f.Met = "< 2 ms", met(len(t.lat) > 0 && percentile(t.lat, p) < 2*time.Millisecond)
			f.Note = fmt.Sprintf("%d calls (%.0f live at once), half internal, half inbound, over %d extensions; %d 30011 frames written, %d of the calls' frames went to no socket; the simulator's driver was %s late at worst",
				len(res.Calls), l.rate*(l.ring+l.talk).Seconds(), l.extensions(), res.Frames, unsent(res), res.MaxLag.Round(time.Microsecond))
		}
		r.add(f)
	}
	missing := t.expected - t.matched
	r.add(benchFigure{Figure: "7", Name: "live call events missing " + label, Value: float64(missing), Unit: "events",
		Target: "0", Met: met(missing == 0 && t.expected > 0),
		Note: fmt.Sprintf("%d of %d call events arrived, %d twice, %d not of these calls; %d stored in %s",
			t.matched, t.expected, t.duplicates, t.unexpected, stored, signalsStream)})
	dropped := droppedFrames(drops)
	r.add(benchFigure{Figure: "7", Name: "event socket frames the bridge dropped " + label, Value: dropped, Unit: "frames",
		Target: "0", Met: met(dropped == 0),
		Note: "pbx_bridge_live_events_dropped_total grew by: " + dropText(drops)})
	r.add(benchFigure{Figure: "7", Name: "live events delivered " + label, Value: t.rate(), Unit: "events/s",
		Limit: ceil.rate, LimitName: "msgs/s raw core publish, same messages",
		Note: fmt.Sprintf("%d of %d events arrived (%d call, %d call_status.changed, %d cdr.ended; %.0f bytes on average), counted from the first frame to the last event; offered at %s/s, from the first frame to the last; raw: %d of %d arrived",
			len(t.all), offered, t.calls, t.statuses, t.cdrs, t.meanBytes(), number(float64(offered)/frameSpan(res).Seconds()), ceil.got, ceil.sent)})
}

// droppedFrames is the frames the bridge dropped, by its counter's growth:
// each is counted once, under its reason (overflow: too slow).
func droppedFrames(drops map[string]float64) float64 {
	var n float64
	for _, v := range drops {
		n += v
	}
	return n
}

// unsent counts the frames of the calls that were made but went to no
// socket.
func unsent(res pbxtest.CallLoadResult) int {
	n := 0
	for _, c := range res.Calls {
		for _, s := range c.Sent {
			if s == 0 {
				n++
			}
		}
	}
	return n
}

// metricsDelta returns the growth of each series named name{...}.
func metricsDelta(before, after map[string]float64, name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if strings.HasPrefix(k, name+"{") || k == name {
			if d := v - before[k]; d != 0 {
				out[strings.TrimPrefix(k, name)] = d
			}
		}
	}
	return out
}

func dropText(drops map[string]float64) string {
	if len(drops) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(drops))
	for k := range drops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.0f", k, drops[k])
	}
	return strings.Join(parts, ", ")
}

// phaseEvents are the call events of a load call's frames, by phase.
var phaseEvents = [3]string{pbxtest.PhaseRinging: "ringing", pbxtest.PhaseAnswered: "answered", pbxtest.PhaseEnded: "ended"}

// callKey names one call event: the call, the extension, the event.
type callKey struct{ call, ext, event string }

// expectCallEvents returns the call events the load's frames must give,
// each with its frame's send time: one per extension of the call and frame
// sent.
func expectCallEvents(res pbxtest.CallLoadResult) map[callKey]int64 {
	want := map[callKey]int64{}
	for _, c := range res.Calls {
		for p, sent := range c.Sent {
			if sent == 0 {
				continue
			}
			for _, e := range c.Exts {
				want[callKey{c.ID, e, phaseEvents[p]}] = sent
			}
		}
	}
	return want
}

// frameSpan is the time from the load's first frame to its last (at least
// a millisecond): the events it offers come over that span.
func frameSpan(res pbxtest.CallLoadResult) time.Duration {
	var first, last int64
	for _, c := range res.Calls {
		for _, s := range c.Sent {
			if s != 0 && (first == 0 || s < first) {
				first = s
			}
			last = max(last, s)
		}
	}
	return max(time.Millisecond, time.Duration(last-first))
}

// offeredEvents is how many events the load's frames give a bridge that
// keeps up: its call events, one cdr.ended a call, and a
// call_status.changed for each change of an extension's status as the
// simulator sends them (an internal call's caller Busy, Idle, its callee
// Ringing, Busy, Idle; an inbound call's callee Ringing, Busy, Idle).
func offeredEvents(res pbxtest.CallLoadResult) int {
	n := len(expectCallEvents(res))
	for _, c := range res.Calls {
		if c.Sent[pbxtest.PhaseRinging] == 0 {
			continue
		}
		n++ // cdr.ended
		n += 3 + 2*(len(c.Exts)-1)
	}
	return n
}

// sortedLatencies sorts and returns lat.
func sortedLatencies(lat []time.Duration) []time.Duration {
	slices.Sort(lat)
	return lat
}
