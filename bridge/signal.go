package bridge

import (
	"context"
	"sync"
)

// A signal is an event many contexts follow: the requests' cancellation,
// the supervisors' stop. It is kept in a struct where a context must not
// be: a context belongs to a call, and a signal is only something to end
// the calls' contexts by.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

// fire raises the signal (once; later calls do nothing).
func (s *signal) fire() { s.once.Do(func() { close(s.ch) }) }

// bind returns a context of parent that also ends when the signal fires.
func (s *signal) bind(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-s.ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
