package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// liveSubjects are the events of a call load: the call events of each
// extension (the latency is theirs), the call statuses (30008) and the
// call records (30012) that come with them.
var liveSubjects = []string{"pbx.*.call.*", "pbx.*.call_status.changed", "pbx.pbx.cdr.ended"}

// liveArrival is a message and when the bench's subscription got it.
type liveArrival struct {
	at time.Time
	m  *nats.Msg
}

// liveRecorder keeps every event of its subscriptions with its arrival
// time; the matching is done afterwards, so that the callback costs the
// subscription nothing it would charge to the next message.
type liveRecorder struct {
	subs    []*nats.Subscription
	mu      sync.Mutex
	got     []liveArrival
	counts  liveCounts
	changed chan struct{} // poked on every arrival
}

// liveCounts counts arrivals in all and by kind.
type liveCounts struct{ all, calls, statuses, cdrs int }

func (c *liveCounts) add(subject string) {
	c.all++
	switch k, _, _ := kindOf(subject); k {
	case "call":
		c.calls++
	case "status":
		c.statuses++
	case "cdr":
		c.cdrs++
	}
}

// recordLive subscribes to subjects (core subscriptions, without pending
// limits, so that the bench drops nothing).
func recordLive(nc *nats.Conn, subjects ...string) (*liveRecorder, error) {
	l := &liveRecorder{changed: make(chan struct{}, 1)}
	for _, s := range subjects {
		sub, err := nc.Subscribe(s, l.arrived)
		if err != nil {
			l.stop()
			return nil, err
		}
		_ = sub.SetPendingLimits(-1, -1)
		l.subs = append(l.subs, sub)
	}
	return l, nc.Flush()
}

func (l *liveRecorder) arrived(m *nats.Msg) {
	now := time.Now()
	if m.Header.Get("Ce-Type") == "" {
		return // a request (call control is off, but pbx.*.call.* would match one), not an event
	}
	l.mu.Lock()
	l.got = append(l.got, liveArrival{now, m})
	l.counts.add(m.Subject)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *liveRecorder) stop() {
	for _, s := range l.subs {
		_ = s.Unsubscribe()
	}
}

func (l *liveRecorder) count() liveCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts
}

func (l *liveRecorder) snapshot() []liveArrival {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]liveArrival(nil), l.got...)
}

// awaitQuiet waits until done (if set) holds, nothing arrived for idle, or
// most passed, and returns how many messages arrived. Neither is an error:
// what did not arrive is counted.
func (l *liveRecorder) awaitQuiet(ctx context.Context, idle, most time.Duration, done func(liveCounts) bool) int {
	deadline := time.NewTimer(most)
	defer deadline.Stop()
	quiet := time.NewTimer(idle)
	defer quiet.Stop()
	for done == nil || !done(l.count()) {
		select {
		case <-l.changed:
			quiet.Reset(idle)
			continue
		case <-quiet.C:
		case <-deadline.C:
		case <-ctx.Done():
		}
		break
	}
	return l.count().all
}

// kindOf tells a live event by its subject: "call" (pbx.<ext>.call.<event>,
// with ext and event), "status" or "cdr".
func kindOf(subject string) (kind, ext, event string) {
	p := strings.Split(subject, ".")
	switch {
	case len(p) == 4 && p[2] == "call":
		return "call", p[1], p[3]
	case len(p) == 4 && p[2] == "call_status":
		return "status", p[1], ""
	case len(p) == 4 && p[2] == "cdr":
		return "cdr", "", ""
	}
	return "", "", ""
}

// liveTally is a measured run's events matched against the frames.
type liveTally struct {
	expected, matched, duplicates, unexpected int
	lat                                       []time.Duration // sorted, of the matched call events
	liveCounts
	all       []liveArrival
	firstSent time.Time
}

// tallyLive matches each call event to the frame it came from (by call,
// extension and event), once.
func tallyLive(want map[callKey]int64, got []liveArrival) liveTally {
	t := liveTally{expected: len(want), all: got}
	for _, sent := range want {
		if s := time.Unix(0, sent); t.firstSent.IsZero() || s.Before(t.firstSent) {
			t.firstSent = s
		}
	}
	for _, a := range got {
		t.liveCounts.add(a.m.Subject)
	}
	seen := make(map[callKey]bool, len(want))
	for _, a := range got {
		kind, ext, event := kindOf(a.m.Subject)
		if kind != "call" {
			continue
		}
		var body struct {
			Data struct {
				CallID string `json:"call_id"`
			} `json:"data"`
		}
		_ = json.Unmarshal(a.m.Data, &body)
		k := callKey{body.Data.CallID, ext, event}
		sent, ok := want[k]
		switch {
		case !ok:
			t.unexpected++
		case seen[k]:
			t.duplicates++
		default:
			seen[k] = true
			t.matched++
			t.lat = append(t.lat, a.at.Sub(time.Unix(0, sent)))
		}
	}
	t.lat = sortedLatencies(t.lat)
	return t
}

// rate is the events delivered a second, from the first frame's send time
// to the last event's arrival.
func (t liveTally) rate() float64 {
	if len(t.all) == 0 {
		return 0
	}
	return float64(len(t.all)) / t.all[len(t.all)-1].at.Sub(t.firstSent).Seconds()
}

func (t liveTally) meanBytes() float64 {
	if len(t.all) == 0 {
		return 0
	}
	n := 0
	for _, a := range t.all {
		n += len(a.m.Data)
	}
	return float64(n) / float64(len(t.all))
}

// storedCallEvents counts the call events the signals stream holds (the
// raw limit's, on pbx.rawbench.*, left out).
func storedCallEvents(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	s, err := js.Stream(ctx, signalsStream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", signalsStream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("pbx.*.call.*"))
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", signalsStream, err)
	}
	var n uint64
	for subject, c := range info.State.Subjects {
		if !strings.HasPrefix(subject, "pbx.rawbench.") {
			n += c
		}
	}
	return n, nil
}

// liveCeiling is what core publishes of the bridge's messages did on the
// same server.
type liveCeiling struct {
	lat       []time.Duration // sorted: paced at the bridge's event rate
	rate      float64         // msgs/s: as fast as one connection goes
	sent, got int             // of the fast run
}

// liveLimits replays the events the bridge published (the same subjects
// but for the extension token, the same headers and bodies, in the same
// mix), as many as the load offered, as core publishes from a connection
// of their own: at the rate the load offered them for d, each timed, then
// all of them as fast as the connection goes.
func (r *benchRun) liveLimits(ctx context.Context, t liveTally, offered int, d time.Duration) (liveCeiling, error) {
	var ceil liveCeiling
	if len(t.all) == 0 {
		return ceil, errors.New("no live event arrived: nothing to replay")
	}
	pub, err := nats.Connect(r.ns.ClientURL(), nats.Name("pbx-bridge bench raw"))
	if err != nil {
		return ceil, err
	}
	defer pub.Close()
	rate := float64(offered) / d.Seconds()
	if ceil.lat, err = rawCorePaced(ctx, r.nc, pub, rawLiveMessages(t.all, offered), rate); err != nil {
		return ceil, err
	}
	ceil.sent = offered
	ceil.got, ceil.rate, err = rawCoreFast(ctx, r.nc, pub, rawLiveMessages(t.all, offered))
	return ceil, err
}

// rawLiveMessages are n messages cycling through the arrivals: each on
// its subject with the extension token rawbench (so that the stream
// captures it as it captured the bridge's), the same body and headers, and
// a Nats-Msg-Id of its own of the same length.
func rawLiveMessages(got []liveArrival, n int) []*nats.Msg {
	out := make([]*nats.Msg, n)
	for i := range out {
		s := got[i%len(got)].m
		p := strings.SplitN(s.Subject, ".", 3)
		m := nats.NewMsg(p[0] + ".rawbench." + p[2])
		m.Data = s.Data
		for k, v := range s.Header {
			m.Header[k] = v
		}
		id := s.Header.Get(jetstream.MsgIDHeader)
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("raw%0*d", max(len(id)-3, 1), i))
		out[i] = m
	}
	return out
}

// rawSentHeader carries a raw message's send time.
const rawSentHeader = "Bench-Sent-Ns"

// rawCorePaced publishes msgs at rate a second, each stamped with its send
// time, and returns the latencies the subscriber saw, sorted.
func rawCorePaced(ctx context.Context, sub, pub *nats.Conn, msgs []*nats.Msg, rate float64) ([]time.Duration, error) {
	rec, err := recordLive(sub, "pbx.rawbench.>")
	if err != nil {
		return nil, err
	}
	defer rec.stop()
	err = paced(ctx, len(msgs), rate, func(i int) error {
		msgs[i].Header.Set(rawSentHeader, strconv.FormatInt(time.Now().UnixNano(), 10))
		return pub.PublishMsg(msgs[i])
	})
	if err != nil {
		return nil, err
	}
	rec.awaitQuiet(ctx, 2*time.Second, time.Minute, func(c liveCounts) bool { return c.all >= len(msgs) })
	var lat []time.Duration
	for _, a := range rec.snapshot() {
		if ns, err := strconv.ParseInt(a.m.Header.Get(rawSentHeader), 10, 64); err == nil {
			lat = append(lat, a.at.Sub(time.Unix(0, ns)))
		}
	}
	return sortedLatencies(lat), nil
}

// rawCoreFast publishes msgs as fast as the connection takes them and
// returns how many the subscriber got and at what rate, from the first
// publish to the last arrival.
func rawCoreFast(ctx context.Context, sub, pub *nats.Conn, msgs []*nats.Msg) (int, float64, error) {
	rec, err := recordLive(sub, "pbx.rawbench.>")
	if err != nil {
		return 0, 0, err
	}
	defer rec.stop()
	start := time.Now()
	for _, m := range msgs {
		if err := pub.PublishMsg(m); err != nil {
			return 0, 0, fmt.Errorf("raw publish: %w", err)
		}
	}
	if err := pub.Flush(); err != nil {
		return 0, 0, err
	}
	rec.awaitQuiet(ctx, 2*time.Second, time.Minute, func(c liveCounts) bool { return c.all >= len(msgs) })
	got := rec.snapshot()
	if len(got) == 0 {
		return 0, 0, errors.New("raw publish: nothing arrived")
	}
	return len(got), float64(len(got)) / got[len(got)-1].at.Sub(start).Seconds(), nil
}
