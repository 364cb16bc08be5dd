package livecall

import "time"

// tombstones remembers ended calls for a while, oldest first, at most
// max of them.
type tombstones struct {
	at    map[string]time.Time
	queue []tombstone // from head on
	head  int
	max   int
}

type tombstone struct {
	id string
	at time.Time
}

func newTombstones(max int) tombstones {
	return tombstones{at: map[string]time.Time{}, max: max}
}

// add remembers id, forgetting the oldest beyond max at once: a flood of
// short calls between two sweeps must not grow it.
func (ts *tombstones) add(id string, at time.Time) {
	ts.at[id] = at
	ts.queue = append(ts.queue, tombstone{id, at})
	ts.prune(time.Time{})
}

func (ts *tombstones) has(id string) bool {
	_, ok := ts.at[id]
	return ok
}

// live returns the tombstones in order, each id once (its latest).
func (ts *tombstones) live() []tombstone {
	var out []tombstone
	for _, e := range ts.queue[ts.head:] {
		if ts.at[e.id].Equal(e.at) {
			out = append(out, e)
		}
	}
	return out
}

// prune forgets the tombstones from before cutoff, and the oldest beyond
// max.
func (ts *tombstones) prune(cutoff time.Time) {
	for ts.head < len(ts.queue) {
		e := ts.queue[ts.head]
		current := ts.at[e.id].Equal(e.at)
		if current && !e.at.Before(cutoff) && len(ts.at) <= ts.max {
			break
		}
		if current {
			delete(ts.at, e.id)
		}
		ts.queue[ts.head] = tombstone{}
		ts.head++
	}
	if ts.head > len(ts.queue)/2 {
		ts.queue = append(ts.queue[:0:0], ts.queue[ts.head:]...)
		ts.head = 0
	}
}
