package pbx

import (
	"context"
	"testing"
)

func TestCloserEndsBoundContexts(t *testing.T) {
	s := NewCloser()
	a, cancelA := s.Bind(context.Background())
	defer cancelA()
	b, cancelB := s.Bind(context.Background())
	cancelB() // let go before the signal: forgotten
	if len(s.cancels) != 1 {
		t.Fatalf("%d bound, want 1 after a cancel", len(s.cancels))
	}
	if a.Err() != nil || b.Err() == nil {
		t.Fatal("a context ended too early, or a cancelled one did not")
	}
	s.Fire()
	if a.Err() == nil {
		t.Error("a bound context outlived the signal")
	}
	late, cancelLate := s.Bind(context.Background())
	defer cancelLate()
	if late.Err() == nil {
		t.Error("a context bound after the signal did not end at once")
	}
	s.Fire() // twice is harmless
}

func TestCloserFired(t *testing.T) {
	s := NewCloser()
	if s.Fired() {
		t.Fatal("fired before Fire")
	}
	s.Fire()
	if !s.Fired() {
		t.Fatal("not fired after Fire")
	}
}
