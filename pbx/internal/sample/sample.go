package sample

import (
	"sync"
	"time"
)

// Every is how often a repeated warning of one kind may be logged.
const Every = 10 * time.Second

// Warnings thins out the repeated warnings of one session or stream: the
// first of a kind is logged, then at most one every Every, carrying how
// many were suppressed since. Kinds are few (drop reasons, decoded fields),
// so the map stays small. The zero value is ready to use.
type Warnings struct {
	mu    sync.Mutex
	kinds map[string]*warnKind
}

type warnKind struct {
	last       time.Time // when one was last logged
	suppressed int       // since then
}

// Allow reports whether a warning of kind may be logged at now, and how
// many of that kind were suppressed since the last one logged.
func (w *Warnings) Allow(kind string, now time.Time) (ok bool, suppressed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.kinds == nil {
		w.kinds = map[string]*warnKind{}
	}
	k := w.kinds[kind]
	if k == nil {
		w.kinds[kind] = &warnKind{last: now}
		return true, 0
	}
	if now.Sub(k.last) < Every {
		k.suppressed++
		return false, 0
	}
	suppressed, k.suppressed, k.last = k.suppressed, 0, now
	return true, suppressed
}

// Flush returns the kinds with warnings suppressed since their last logged
// one, and forgets them: a session that ends says what it held back.
func (w *Warnings) Flush() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for kind, k := range w.kinds {
		if k.suppressed > 0 {
			out[kind] = k.suppressed
			k.suppressed = 0
		}
	}
	return out
}
