package sample

import (
	"maps"
	"testing"
	"time"
)

func TestWarnings(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var w Warnings
	steps := []struct {
		kind       string
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"b", time.Second, true, 0}, // kinds are apart
		{"a", 2 * time.Second, false, 0},
		{"a", 9 * time.Second, false, 0},
		{"a", 10 * time.Second, true, 3}, // 10 s after the first
		{"a", 11 * time.Second, false, 0},
		{"a", 60 * time.Second, true, 1},
		{"a", 61 * time.Second, false, 0},
		{"b", 61 * time.Second, true, 0},
	}
	for i, s := range steps {
		ok, n := w.Allow(s.kind, t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("step %d (%s at %v): %v, %d; want %v, %d", i, s.kind, s.at, ok, n, s.ok, s.suppressed)
		}
	}
	if got, want := w.Flush(), map[string]int{"a": 1}; !maps.Equal(got, want) {
		t.Fatalf("flush = %v, want %v", got, want)
	}
	if got := w.Flush(); len(got) != 0 {
		t.Fatalf("second flush = %v, want nothing", got)
	}
}
