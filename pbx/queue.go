package pbx

import "sync"

// A session's events wait in an eventQueue until the consumer takes them
// (Session.Next). It replaces a channel of Config.EventBuffer slots: the
// limit is the same, and so is the slow-consumer policy built on it
// (delivery.go), but the storage grows as events wait and is given back
// once they are taken. An idle session holds a handful of slots, not 256
// (4 KiB each, the largest cost of an idle extension before).

// Slots an empty queue keeps: a consumer that keeps up never makes the
// queue allocate; one that falls behind gets its slots back when it
// catches up.
const (
	queueMinSlots  = 4
	queueKeepSlots = 16
)

type eventQueue struct {
	limit int
	// ready holds a value when events may wait to be taken; it is closed
	// once the queue is closed (and so stays ready). room holds a value
	// when an event was taken from a full queue.
	ready, room chan struct{}
	// notify, if set, is called after each event queued and once closed,
	// outside the lock (Hooks.EventsReady).
	notify func()

	mu     sync.Mutex
	ring   []Event // len(ring) slots, n of them used from head on
	head   int
	n      int
	closed bool
}

func newEventQueue(limit int, notify func()) *eventQueue {
	return &eventQueue{limit: limit, ready: make(chan struct{}, 1), room: make(chan struct{}, 1), notify: notify}
}

// push queues ev unless the queue holds limit events (or is closed); it
// reports whether ev was queued.
func (q *eventQueue) push(ev Event) bool {
	q.mu.Lock()
	if q.closed || q.n >= q.limit {
		q.mu.Unlock()
		return false
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = ev
	q.n++
	signal(q.ready)
	q.mu.Unlock()
	if q.notify != nil {
		q.notify()
	}
	return true
}

// grow doubles the ring, up to limit slots, keeping the events in order.
// q.mu must be held.
func (q *eventQueue) grow() {
	size := min(max(2*len(q.ring), queueMinSlots), q.limit)
	ring := make([]Event, size)
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// pop takes the oldest event. When none waits it returns nil, and open
// false once the queue is closed.
func (q *eventQueue) pop() (ev Event, open bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil, !q.closed
	}
	ev = q.ring[q.head]
	q.ring[q.head] = nil // the consumer owns it now; let it be collected
	q.head = (q.head + 1) % len(q.ring)
	if q.n == q.limit {
		signal(q.room)
	}
	q.n--
	if q.n == 0 {
		q.head = 0
		if len(q.ring) > queueKeepSlots {
			q.ring = nil
		}
	}
	return ev, true
}

// close refuses further events; those queued can still be taken.
func (q *eventQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	close(q.ready)
	q.mu.Unlock()
	if q.notify != nil {
		q.notify()
	}
}

// signal leaves a value in c (of one slot) unless one is already there.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
