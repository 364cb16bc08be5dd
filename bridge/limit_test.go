package bridge

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPBXLimiterBoundsConcurrency(t *testing.T) {
	l := newPBXLimiter(1000, 2)
	ctx := context.Background()
	r1, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third Acquire with two slots taken = %v, want it to wait until its context ends", err)
	}
	r1()
	r3, err := l.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire after a release: %v", err)
	}
	r2()
	r3()
}

func TestPBXLimiterRate(t *testing.T) {
	// A burst of 2 at 1 request per hour: the third request must wait.
	l := newPBXLimiter(1.0/3600, 2)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		release, err := l.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(short); err == nil {
		t.Fatal("a request beyond the rate went through at once")
	}
}
