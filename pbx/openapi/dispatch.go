package openapi

import (
	"context"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// streamItem is what the dispatcher hands on: an event or a state.
type streamItem struct {
	ev   *Event
	st   *EventStreamState
	lost int // events dropped just before this one
}

// dispatcher runs OnEvent and OnState on a goroutine of its own, so that a
// slow consumer never stalls the socket's reader (whose silence would look
// like the PBX's).
type dispatcher struct {
	s    *EventStream
	ctx  context.Context
	q    chan streamItem
	lost int // dropped since the last item queued; the reader's only
	done chan struct{}
}

func (s *EventStream) startDispatch(ctx context.Context) *dispatcher {
	d := &dispatcher{s: s, ctx: ctx, q: make(chan streamItem, s.cfg.Buffer), done: make(chan struct{})}
	go d.run()
	return d
}

func (d *dispatcher) run() {
	defer close(d.done)
	for it := range d.q {
		if d.ctx.Err() != nil {
			continue // nobody is owed anything any more
		}
		if it.lost > 0 && d.s.cfg.OnLost != nil {
			d.s.cfg.OnLost(it.lost)
		}
		switch {
		case it.ev != nil:
			d.s.events.Add(1)
			d.s.cfg.OnEvent(it.ev)
		case it.st != nil && d.s.cfg.OnState != nil:
			d.s.cfg.OnState(*it.st)
		}
	}
}

// event queues ev without waiting; a full queue drops it.
func (d *dispatcher) event(ev *Event) {
	select {
	case d.q <- streamItem{ev: ev, lost: d.lost}:
		d.lost = 0
	default:
		d.lost++
		d.s.drop(pbx.DropOverflow, nil, nil)
	}
}

// state queues st, waiting for room: a state change is never dropped, and
// they are rare.
func (d *dispatcher) state(st EventStreamState) {
	select {
	case d.q <- streamItem{st: &st, lost: d.lost}:
		d.lost = 0
	case <-d.ctx.Done():
	}
}

// stop waits until what is queued has been handed on (or, once ctx ended,
// thrown away). Nothing may be queued after it.
func (d *dispatcher) stop() {
	close(d.q)
	<-d.done
}
