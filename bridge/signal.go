package bridge

import (
	"context"
	"sync"
)

// A signal is an event many contexts follow: the requests' cancellation,
// the supervisors' stop. It is kept in a struct where a context must not
// be: a context belongs to a call, and a signal is only something to end
// the calls' contexts by. Binding costs no goroutine (an idle extension's
// supervisor has none).
type signal struct {
	mu      sync.Mutex
	fired   bool
	next    uint64
	cancels map[uint64]context.CancelFunc
}

func newSignal() *signal { return &signal{cancels: map[uint64]context.CancelFunc{}} }

// fire raises the signal: every bound context ends, and every context
// bound later ends at once.
func (s *signal) fire() {
	s.mu.Lock()
	s.fired = true
	cancels := s.cancels
	s.cancels = map[uint64]context.CancelFunc{}
	s.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
}

// bind returns a context of parent that also ends when the signal fires.
func (s *signal) bind(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	s.mu.Lock()
	if s.fired {
		s.mu.Unlock()
		cancel()
		return ctx, cancel
	}
	id := s.next
	s.next++
	s.cancels[id] = cancel
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		delete(s.cancels, id)
		s.mu.Unlock()
		cancel()
	}
}
