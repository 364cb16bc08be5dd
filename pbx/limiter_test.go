package pbx_test

import (
	"context"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/testrig"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

func TestLimiterSeesEveryRequest(t *testing.T) {
	sim, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ext := sim.AddExtension(pbxtest.Extension{Number: "1001"})
	lim := &testrig.CountingLimiter{}
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
	if acquired, held := lim.Counts(); acquired != total || held != 0 {
		t.Fatalf("limiter acquired %d (held %d), the PBX served %d requests", acquired, held, total)
	}
}
