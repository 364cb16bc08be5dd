package bridge

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
)

// The live events' way to NATS. The event stream's goroutine turns frames
// into events and queues them, without waiting for NATS; one publisher
// sends what is queued as ordered batches, pipelined (publishInOrder, as a
// catch-up does): a PBX with 1,000 calls a second sends thousands of
// frames a second, more than one publish round trip each allows. The
// saver writes the tracker's state only once every event queued before it
// was exported has been published (publish first, save after).

const (
	// liveQueueMax bounds the events waiting for the publisher; a full
	// queue holds the stream's goroutine, whose own buffer then drops
	// (counted: pbx_bridge_live_events_dropped_total{reason="overflow"}).
	liveQueueMax = 16384
	// liveBatchMax bounds one ordered batch.
	liveBatchMax = 1024
	// liveFlushTimeout is how long the publisher goes on after the stream
	// stopped, to publish what was queued.
	liveFlushTimeout = 5 * time.Second
)

// liveRun is one event stream's events: built on the stream's goroutine,
// published on the publisher's, and the tracker's state saved on the
// saver's.
type liveRun struct {
	b     *Bridge
	api   *openapi.Client
	tr    *livecall.Tracker
	store *liveState // nil without JetStream: the state lives as long as the process
	q     *liveQueue
	// mu is held while frames become events and are queued, and while the
	// state is exported: an exported state never has a transition whose
	// event is not queued, and the saver waits for what is queued to be
	// published (a crash before the save makes the next holder publish
	// it again, with the same id).
	mu    sync.Mutex
	dirty atomic.Bool   // events were queued since the last save
	saved chan struct{} // pokes the saver
	// stale: the tracker started from a saved state, which calls may have
	// left since; the first connection reconciles as after a gap.
	stale bool
}

// queue queues evs in order for the publisher (l.mu held), and has the
// state saved.
func (l *liveRun) queue(evs []livecall.Event) {
	if len(evs) == 0 {
		return
	}
	out := make([]outEvent, 0, len(evs))
	for _, e := range evs {
		ev, err := l.outEvent(e)
		if err != nil {
			l.b.cfg.Logger.Error("live calls: event not built", "type", e.Type, "err", err)
			continue
		}
		out = append(out, ev)
	}
	l.q.put(out)
	l.dirty.Store(true)
	select {
	case l.saved <- struct{}{}:
	default:
	}
}

// publishLoop publishes what is queued, in order, until the queue is
// closed and empty or ctx ends (then what is left is not published).
func (l *liveRun) publishLoop(ctx context.Context) {
	for {
		batch := l.q.take(liveBatchMax)
		if batch == nil {
			return
		}
		n, err := l.b.pub.publishInOrder(ctx, orderedBatch{
			n:       len(batch),
			events:  func(i int) ([]outEvent, error) { return batch[i : i+1], nil },
			dropped: l.dropTooLarge,
		})
		l.q.published(n)
		if err != nil {
			left := l.q.abandon() + len(batch) - n
			l.b.cfg.Logger.Warn("live calls: events not published before the stream stopped", "events", left, "err", err)
			return
		}
	}
}

// dropTooLarge counts and logs an event that can never be published.
func (l *liveRun) dropTooLarge(ev outEvent, err error) {
	l.b.metrics.eventDropped(ev.typ, "too_large")
	l.b.cfg.Logger.Error("live calls: event dropped: larger than the NATS server's max_payload", "subject", ev.subject,
		"type", ev.typ, "size", ev.wireSize(), "max_payload", l.b.nc.MaxPayload(), "err", err)
}

// saveLoop saves the state after events were queued, at most every
// liveSaveEvery, until ctx ends; then once more, what is left.
func (l *liveRun) saveLoop(ctx context.Context) {
	if l.store == nil {
		return
	}
	failing := false
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), liveFlushTimeout+5*time.Second)
			l.saveOnce(fctx, &failing)
			cancel()
			return
		case <-l.saved:
		}
		l.saveOnce(ctx, &failing)
		sleep(ctx, liveSaveEvery)
	}
}

// saveOnce writes the state if events were queued since the last write,
// once they are published. A failure is warned about once, until a save
// works again.
func (l *liveRun) saveOnce(ctx context.Context, failing *bool) {
	if !l.dirty.Swap(false) {
		return
	}
	l.mu.Lock()
	snap := l.tr.Snapshot()
	queued := l.q.count()
	l.mu.Unlock()
	state, err := snap.JSON()
	if err == nil && !l.q.wait(ctx, queued) {
		err = errUnpublished
	}
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = l.store.save(sctx, state)
		cancel()
	}
	switch {
	case err != nil && ctx.Err() != nil:
		l.dirty.Store(true) // stopping: the final save follows
	case err != nil:
		l.dirty.Store(true)
		select {
		case l.saved <- struct{}{}:
		default:
		}
		if !*failing {
			l.b.cfg.Logger.Warn("live calls: the state was not saved; trying again (a failover meanwhile may repeat or miss a transition)", "err", err)
		}
		*failing = true
	case *failing:
		l.b.cfg.Logger.Info("live calls: the state is saved again")
		*failing = false
	}
}

// liveQueue is the events between the stream's goroutine and the
// publisher, and how many of them are published.
type liveQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond // on mu: queued, taken, published or closed
	events []outEvent // queued, not yet taken
	max    int
	queued uint64 // events ever queued
	done   uint64 // events published (or dropped as too large), in order
	closed bool
	gaveUp bool // the publisher stopped with events not published
}

func newLiveQueue(max int) *liveQueue {
	q := &liveQueue{max: max}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// put queues evs, waiting while the queue is full; after close it drops
// them (the stream has stopped).
func (q *liveQueue) put(evs []outEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.events) > 0 && len(q.events)+len(evs) > q.max && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return
	}
	q.events = append(q.events, evs...)
	q.queued += uint64(len(evs))
	q.cond.Broadcast()
}

// take returns up to n queued events, waiting for one; nil once the queue
// is closed and empty.
func (q *liveQueue) take(n int) []outEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.events) == 0 && !q.closed {
		q.cond.Wait()
	}
	k := min(n, len(q.events))
	if k == 0 {
		return nil
	}
	batch := append([]outEvent(nil), q.events[:k]...)
	q.events = append(q.events[:0], q.events[k:]...)
	q.cond.Broadcast()
	return batch
}

// published counts n more events published.
func (q *liveQueue) published(n int) {
	q.mu.Lock()
	q.done += uint64(n)
	q.cond.Broadcast()
	q.mu.Unlock()
}

// abandon empties the queue once the publisher gave up, and returns how
// many events it held.
func (q *liveQueue) abandon() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.events)
	q.events, q.gaveUp, q.closed = nil, true, true
	q.cond.Broadcast()
	return n
}

func (q *liveQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// count is how many events were ever queued.
func (q *liveQueue) count() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued
}

// wait reports whether the first n events queued were all published,
// waiting for them until ctx ends or the publisher gives up.
func (q *liveQueue) wait(ctx context.Context, n uint64) bool {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.done < n && !q.gaveUp && ctx.Err() == nil {
		q.cond.Wait()
	}
	return q.done >= n
}
