package pbx_test

import (
	"context"
	"sync"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// countingLimiter counts the requests it lets through.
type countingLimiter struct {
	mu       sync.Mutex
	acquired int
	held     int
}

func (l *countingLimiter) Acquire(context.Context) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acquired++
	l.held++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.held--
	}, nil
}

func TestLimiterSeesEveryRequest(t *testing.T) {
	sim, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ext := sim.AddExtension(pbxtest.Extension{Number: "1001"})
	lim := &countingLimiter{}
	s, err := pbx.Open(context.Background(), pbx.Config{URL: sim.URL(), RootCAs: sim.CertPool(), Username: "1001", Secret: ext.Secret, Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CDRQuery(context.Background(), pbx.CDRQuery{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	total := 0
	for _, p := range []string{"pbx/getproduct", "login", "extension/getpersonalglobal", "licenseservice/get", "extension/getpersonal", "cdr/searchpersonal", "logout"} {
		total += sim.Requests("/api/v1.0/" + p)
	}
	lim.mu.Lock()
	defer lim.mu.Unlock()
	if lim.acquired != total || lim.held != 0 {
		t.Fatalf("limiter acquired %d (held %d), the PBX served %d requests", lim.acquired, lim.held, total)
	}
}
