package pbx

import (
	"testing"
)

// TestEventQueueLimitAndOrder: the queue takes at most limit events, gives
// them back in order, signals room when a full queue is taken from, and
// takes again after that.
func TestEventQueueLimitAndOrder(t *testing.T) {
	const limit = 256
	q := newEventQueue(limit, nil)
	for i := range limit {
		if !q.push(&Overflow{Dropped: i}) {
			t.Fatalf("push %d refused below the limit", i)
		}
	}
	if q.push(&Overflow{Dropped: limit}) {
		t.Fatalf("push %d accepted: the limit is %d", limit+1, limit)
	}
	if len(q.ring) != limit {
		t.Errorf("%d slots for %d events, want the limit exactly", len(q.ring), limit)
	}
	select {
	case <-q.room:
		t.Fatal("room signalled before anything was taken")
	default:
	}
	for i := range limit / 2 {
		ev, open := q.pop()
		if o, ok := ev.(*Overflow); !ok || !open || o.Dropped != i {
			t.Fatalf("pop %d = %v, %v", i, ev, open)
		}
		if i == 0 {
			select {
			case <-q.room:
			default:
				t.Fatal("no room signalled after a take from the full queue")
			}
		}
	}
	// Wrap around the ring: the order holds across it.
	for i := range limit / 2 {
		if !q.push(&Overflow{Dropped: limit + i}) {
			t.Fatalf("push after room %d refused", i)
		}
	}
	if q.push(&Overflow{}) {
		t.Fatal("push beyond the limit accepted after a wrap")
	}
	for i := limit / 2; i < limit+limit/2; i++ {
		if ev, _ := q.pop(); ev.(*Overflow).Dropped != i {
			t.Fatalf("pop = %d, want %d", ev.(*Overflow).Dropped, i)
		}
	}
	if ev, open := q.pop(); ev != nil || !open {
		t.Fatalf("empty queue pop = %v, %v", ev, open)
	}
}

// TestEventQueueGrowsLazily: an idle queue holds queueMinSlots slots,
// grows by doubling as events wait, and gives a burst's slots back once
// drained; one that stays small keeps its slots.
func TestEventQueueGrowsLazily(t *testing.T) {
	q := newEventQueue(256, nil)
	if q.ring != nil {
		t.Fatalf("a new queue holds %d slots", len(q.ring))
	}
	q.push(&SocketState{Up: true})
	if len(q.ring) != queueMinSlots {
		t.Errorf("%d slots for one event, want %d", len(q.ring), queueMinSlots)
	}
	q.pop()
	for range 10 {
		q.push(&Notice{})
	}
	if len(q.ring) != 16 {
		t.Errorf("%d slots for 10 events, want 16", len(q.ring))
	}
	for range 10 {
		q.pop()
	}
	if len(q.ring) != 16 {
		t.Errorf("%d slots after draining 10 events, want them kept (%d)", len(q.ring), queueKeepSlots)
	}
	for range 100 {
		q.push(&Notice{})
	}
	if len(q.ring) != 128 {
		t.Errorf("%d slots for 100 events, want 128", len(q.ring))
	}
	for range 100 {
		q.pop()
	}
	if q.ring != nil {
		t.Errorf("%d slots kept after a burst of 100 was drained", len(q.ring))
	}
}

// TestEventQueueClose: a closed queue refuses events, still gives those
// queued, then says it is closed; Ready stays ready; notify is told of
// each event and of the close.
func TestEventQueueClose(t *testing.T) {
	notified := 0
	q := newEventQueue(4, func() { notified++ })
	q.push(&Notice{Type: 1})
	q.push(&Notice{Type: 2})
	select {
	case <-q.ready:
	default:
		t.Fatal("not ready with events waiting")
	}
	q.close()
	q.close()
	if q.push(&Notice{Type: 3}) {
		t.Fatal("push accepted after close")
	}
	for _, want := range []int{1, 2} {
		if ev, open := q.pop(); !open || ev.(*Notice).Type != want {
			t.Fatalf("pop after close = %v, %v; want notice %d", ev, open, want)
		}
	}
	if ev, open := q.pop(); ev != nil || open {
		t.Fatalf("drained closed queue pop = %v, %v; want nil, false", ev, open)
	}
	for range 2 {
		select {
		case <-q.ready:
		default:
			t.Fatal("a closed queue is not ready")
		}
	}
	if notified != 3 {
		t.Errorf("notify called %d times, want 3 (two events, one close)", notified)
	}
}
