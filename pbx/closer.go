package pbx

import (
	"context"
	"sync"
)

// A Closer ends many contexts at once: an OpenAPI client's Close, a
// bridge's shutdown. It is kept in a struct where a context must not be: a
// context belongs to a call, and a Closer only ends the calls' contexts.
// Binding costs no goroutine. The zero value is not ready: use NewCloser.
type Closer struct {
	mu      sync.Mutex
	fired   bool
	next    uint64
	cancels map[uint64]context.CancelFunc
}

// NewCloser returns a Closer that has not fired.
func NewCloser() *Closer { return &Closer{cancels: map[uint64]context.CancelFunc{}} }

// Fired reports whether the Closer fired.
func (s *Closer) Fired() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fired
}

// Fire ends every bound context, and every context bound later at once;
// firing again does nothing.
func (s *Closer) Fire() {
	s.mu.Lock()
	s.fired = true
	cancels := s.cancels
	s.cancels = map[uint64]context.CancelFunc{}
	s.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
}

// Bind returns a context of parent that also ends when the Closer fires.
func (s *Closer) Bind(parent context.Context) (context.Context, context.CancelFunc) {
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
