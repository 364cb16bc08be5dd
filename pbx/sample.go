package pbx

import (
	"sync"
	"time"
)

// warnEvery is how often a repeated warning of one kind may be logged.
const warnEvery = 10 * time.Second

// warnSampler thins out repeated warnings of one session: the first of a
// kind is logged, then at most one every warnEvery, carrying how many were
// suppressed since. A PBX that floods a socket with garbage frames (or
// answers with a page of odd fields) must not flood the log too; the
// counting hooks stay exact. Kinds are few (drop reasons, decoded fields),
// so the map stays small.
type warnSampler struct {
	mu    sync.Mutex
	kinds map[string]*warnKind
}

type warnKind struct {
	last       time.Time // when one was last logged
	suppressed int       // since then
}

// allow reports whether a warning of kind may be logged at now, and how
// many of that kind were suppressed since the last one logged.
func (w *warnSampler) allow(kind string, now time.Time) (ok bool, suppressed int) {
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
	if now.Sub(k.last) < warnEvery {
		k.suppressed++
		return false, 0
	}
	suppressed, k.suppressed, k.last = k.suppressed, 0, now
	return true, suppressed
}

// flush returns the kinds with warnings suppressed since their last logged
// one, and forgets them: a session that ends says what it held back.
func (w *warnSampler) flush() map[string]int {
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
