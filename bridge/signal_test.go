package bridge

import (
	"context"
	"testing"
)

func TestSignalEndsBoundContexts(t *testing.T) {
	s := newSignal()
	a, cancelA := s.bind(context.Background())
	defer cancelA()
	b, cancelB := s.bind(context.Background())
	cancelB() // let go before the signal: forgotten
	if len(s.cancels) != 1 {
		t.Fatalf("%d bound, want 1 after a cancel", len(s.cancels))
	}
	if a.Err() != nil || b.Err() == nil {
		t.Fatal("a context ended too early, or a cancelled one did not")
	}
	s.fire()
	if a.Err() == nil {
		t.Error("a bound context outlived the signal")
	}
	late, cancelLate := s.bind(context.Background())
	defer cancelLate()
	if late.Err() == nil {
		t.Error("a context bound after the signal did not end at once")
	}
	s.fire() // twice is harmless
}
