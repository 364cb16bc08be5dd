package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// arrivals counts the messages of a subscription as they arrive: in all
// and per extension (the subject's second token), when the first and last
// came, one sample message, and the latency of each whose body carries
// "sent_ns" (the simulator's send time).
type arrivals struct {
	sub *nats.Subscription

	mu      sync.Mutex
	n       int
	perExt  map[string]int
	first   time.Time
	last    time.Time
	sample  *nats.Msg
	latency []time.Duration
	changed chan struct{} // poked on every arrival
}

func watch(nc *nats.Conn, subject string) (*arrivals, error) {
	a := &arrivals{perExt: map[string]int{}, changed: make(chan struct{}, 1)}
	sub, err := nc.Subscribe(subject, a.arrived)
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		return nil, err
	}
	a.sub = sub
	return a, nil
}

func (a *arrivals) arrived(m *nats.Msg) {
	now := time.Now()
	var lat time.Duration
	if i := bytes.Index(m.Data, []byte(`"sent_ns":`)); i >= 0 {
		rest := m.Data[i+len(`"sent_ns":`):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if ns, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
			lat = now.Sub(time.Unix(0, ns))
		}
	}
	ext := ""
	if parts := strings.SplitN(m.Subject, ".", 3); len(parts) == 3 {
		ext = parts[1]
	}
	a.mu.Lock()
	a.n++
	a.perExt[ext]++
	if a.first.IsZero() {
		a.first = now
	}
	a.last = now
	if a.sample == nil {
		a.sample = m
	}
	if lat > 0 {
		a.latency = append(a.latency, lat)
	}
	a.mu.Unlock()
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

func (a *arrivals) stop() { _ = a.sub.Unsubscribe() }

// reset forgets what arrived so far.
func (a *arrivals) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n, a.perExt, a.first, a.last, a.latency = 0, map[string]int{}, time.Time{}, time.Time{}, nil
}

// snapshot returns the count, first and last arrival, and a copy of the
// latencies.
func (a *arrivals) snapshot() (n int, first, last time.Time, lat []time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n, a.first, a.last, slices.Clone(a.latency)
}

func (a *arrivals) count(ext string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.perExt[ext]
}

// await waits until done holds, checking on every arrival; it gives up when
// nothing arrived for idle, or after most.
func (a *arrivals) await(ctx context.Context, what string, idle, most time.Duration, done func() bool) error {
	deadline := time.Now().Add(most)
	quiet := time.NewTimer(idle)
	defer quiet.Stop()
	for !done() {
		select {
		case <-a.changed:
			quiet.Reset(idle)
		case <-quiet.C:
			n, _, _, _ := a.snapshot()
			return fmt.Errorf("waiting for %s: nothing arrived for %s (%d messages so far)", what, idle, n)
		case <-ctx.Done():
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			n, _, _, _ := a.snapshot()
			return fmt.Errorf("waiting for %s: gave up after %s (%d messages so far)", what, most, n)
		}
	}
	return nil
}

// awaitCount waits until n messages arrived.
func (a *arrivals) awaitCount(ctx context.Context, what string, n int, idle, most time.Duration) error {
	return a.await(ctx, what, idle, most, func() bool { got, _, _, _ := a.snapshot(); return got >= n })
}

// awaitEach waits until each of exts had at least n messages.
func (a *arrivals) awaitEach(ctx context.Context, what string, exts []string, n int, idle, most time.Duration) error {
	return a.await(ctx, what, idle, most, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, e := range exts {
			if a.perExt[e] < n {
				return false
			}
		}
		return true
	})
}

// percentile returns the p-th percentile (0..100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rawMessages are n copies of sample, as the limit of a figure: the same
// size, the same headers, each with its own Nats-Msg-Id of the same length
// as the sample's, on subjects taken in turn.
func rawMessages(sample *nats.Msg, subjects []string, n int) []*nats.Msg {
	id := sample.Header.Get(jetstream.MsgIDHeader)
	out := make([]*nats.Msg, n)
	for i := range out {
		m := nats.NewMsg(subjects[i%len(subjects)])
		m.Data = sample.Data
		for k, v := range sample.Header {
			m.Header[k] = v
		}
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("raw%0*d", max(len(id)-3, 1), i))
		out[i] = m
	}
	return out
}

// rawPublish publishes msgs with asynchronous JetStream publishes as fast as
// the client's default window lets them, and returns the rate at which they
// were acknowledged: the most the stream takes of such messages from one
// connection.
func rawPublish(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (float64, error) {
	start := time.Now()
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return 0, fmt.Errorf("raw publish: %w", err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("raw publish: not acknowledged within 2m")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	elapsed := time.Since(start)
	for _, f := range futures {
		select {
		case err := <-f.Err():
			return 0, fmt.Errorf("raw publish: %w", err)
		default:
		}
	}
	return float64(len(msgs)) / elapsed.Seconds(), nil
}

// rawLatency publishes msgs at rate a second, asynchronously, each stamped
// with its send time, and returns the publish-to-subscriber latencies a
// subscriber of the same connection's server saw: the NATS share of figure
// 2.
func rawLatency(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, msgs []*nats.Msg, rate float64) ([]time.Duration, error) {
	subject := msgs[0].Subject
	a, err := watch(nc, subject)
	if err != nil {
		return nil, err
	}
	defer a.stop()
	err = paced(ctx, len(msgs), rate, func(i int) error {
		m := msgs[i]
		m.Data = stamp(m.Data, time.Now())
		_, err := js.PublishMsgAsync(m)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := a.awaitCount(ctx, "the raw messages", len(msgs), 10*time.Second, time.Minute); err != nil {
		return nil, err
	}
	_, _, _, lat := a.snapshot()
	return lat, nil
}

// paced calls send for 0 to n-1 at rate a second (checked every
// millisecond), and stops at the first error or when ctx ends.
func paced(ctx context.Context, n int, rate float64, send func(i int) error) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	start := time.Now()
	for sent := 0; sent < n; {
		due := min(n, int(rate*time.Since(start).Seconds())+1)
		for ; sent < due; sent++ {
			if err := send(sent); err != nil {
				return fmt.Errorf("raw publish: %w", err)
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stamp returns data with its "sent_ns" value (or, if it has none, a
// trailing field) set to t, keeping the length.
func stamp(data []byte, t time.Time) []byte {
	out := slices.Clone(data)
	ns := strconv.FormatInt(t.UnixNano(), 10)
	if i := bytes.Index(out, []byte(`"sent_ns":`)); i >= 0 {
		j := i + len(`"sent_ns":`)
		if j+len(ns) <= len(out) {
			copy(out[j:], ns)
			return out
		}
	}
	return append(out, []byte(` {"sent_ns":`+ns+`}`)...)
}
