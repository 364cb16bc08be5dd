package bridge

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The pipelined publish of an ordered batch to JetStream: a window of
// publishes in flight, acknowledged in order (jsPublisher.publishInOrder).

// window is one attempt of publishInOrder, from item done on.
type window struct {
	p  *jsPublisher
	js jetstream.JetStream
	b  orderedBatch

	done       int // leading items dealt with
	next       int // the next item to build
	told       int // done as progress was last told
	failedType string
	// epoch is the connection's reconnect count when the window began: a
	// window never sends on a later connection (see send).
	epoch uint64

	ring       []slot     // what became of the events in flight
	head, tail int        // ring holds slots head..tail-1 (modulo its length)
	queue      []outEvent // events of item next-1 not yet sent
}

// slot is one event in flight: its future, or the error of a publish the
// connection refused at once as too large; last marks its item's last
// event, and an item without events has one slot with neither.
type slot struct {
	item int
	last bool
	ev   outEvent
	f    jetstream.PubAckFuture
	err  error
}

// run sends and awaits until every item is dealt with or a failure; after
// a failure it sends nothing more and waits for what is in flight. Every
// future resolves: acknowledged, failed, timed out (ackTimeout) or failed
// by a reconnect.
func (w *window) run(ctx context.Context) error {
	var sendErr, ackErr error
	sending := func() bool { return sendErr == nil && ackErr == nil && (len(w.queue) > 0 || w.next < w.b.n) }
	for w.head < w.tail || sending() {
		for sending() && w.tail-w.head < len(w.ring) {
			if sendErr = w.send(); sendErr != nil {
				break
			}
		}
		if w.head == w.tail {
			break
		}
		sl := w.ring[w.head%len(w.ring)]
		w.ring[w.head%len(w.ring)] = slot{}
		w.head++
		err := sl.err
		if sl.f != nil {
			select {
			case <-sl.f.Ok():
			case err = <-sl.f.Err():
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		if ackErr != nil {
			continue // draining after a failure: what follows it is sent again
		}
		switch {
		case sl.ev.subject == "": // an item without events
		case err == nil:
			w.p.metrics.published(sl.ev.typ)
		case tooLarge(err):
			w.p.metrics.publishError(sl.ev.typ)
			w.b.dropped(sl.ev, fmt.Errorf("%w: %w", errTooLarge, err))
		default:
			w.p.metrics.publishError(sl.ev.typ)
			ackErr, w.failedType = err, sl.ev.typ
			continue
		}
		if sl.last {
			w.done = sl.item + 1
			if w.b.progress != nil && w.done-w.told >= w.b.every {
				w.told = w.done
				if err := w.b.progress(w.done); err != nil {
					ackErr = &errStopped{err}
				}
			}
		}
	}
	if ackErr != nil {
		return ackErr
	}
	return sendErr
}

// send sends the next event, building the next item's when its queue is
// empty.
func (w *window) send() error {
	if len(w.queue) == 0 {
		evs, err := w.b.events(w.next)
		if err != nil {
			return &errStopped{err}
		}
		w.next++
		if len(evs) == 0 {
			w.ring[w.tail%len(w.ring)] = slot{item: w.next - 1, last: true}
			w.tail++
			return nil
		}
		w.queue = evs
	}
	if nc := w.js.Conn(); !nc.IsConnected() || nc.Stats().Reconnects != w.epoch {
		// What is sent now would wait in the reconnect buffer, or go on a
		// new connection, and reach the stream while what was in flight in
		// the lost connection is gone: a hole before it, which the
		// stream-derived cursor (the last cdr.created) would skip after a
		// crash. Stop, and send everything not acknowledged again, in
		// order, in a new window.
		w.failedType = w.queue[0].typ
		return nats.ErrDisconnected
	}
	ev := w.queue[0]
	f, err := w.js.PublishMsgAsync(eventMsg(ev), jetstream.WithMsgID(ev.id), jetstream.WithStallWait(w.p.ackTimeout))
	if err != nil && !tooLarge(err) {
		w.failedType = ev.typ
		return err
	}
	w.queue = w.queue[1:]
	w.ring[w.tail%len(w.ring)] = slot{item: w.next - 1, last: len(w.queue) == 0, ev: ev, f: f, err: err}
	w.tail++
	return nil
}
