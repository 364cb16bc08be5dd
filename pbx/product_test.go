package pbx_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestOpenRequests: the init sequence asks only what decides something:
// getproduct, login and getpersonal, and getpersonalglobal in the "cn" plan
// mode only; never licenseservice/get or getregisterinfo.
func TestOpenRequests(t *testing.T) {
	for _, tc := range []struct {
		oem    int
		global int
	}{{0, 0}, {1, 1}} {
		t.Run(fmt.Sprintf("base_oem_id %d", tc.oem), func(t *testing.T) {
			srv := newPBX(t, pbxtest.Options{BaseOEMID: tc.oem})
			ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
			open(t, srv, fastConfig(t, srv, ext))
			want := map[string]int{
				"pbx/getproduct":              1,
				"login":                       1,
				"extension/getpersonalglobal": tc.global,
				"licenseservice/get":          0,
				"extension/getpersonal":       1,
				"extension/getregisterinfo":   0,
				"subscribe":                   1,
			}
			for ep, n := range want {
				if got := srv.Requests("/api/v1.0/" + ep); got != n {
					t.Errorf("%s: %d requests, want %d", ep, got, n)
				}
			}
		})
	}
}

// TestProductCacheShared: sessions that share a ProductCache ask getproduct
// once between them, however many open at the same moment.
func TestProductCacheShared(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	cache := pbx.NewProductCache()
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		ext := srv.AddExtension(pbxtest.Extension{Number: fmt.Sprint(1001 + i)})
		cfg := fastConfig(t, srv, ext)
		cfg.ProductCache = cache
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := pbx.Open(context.Background(), cfg)
			if err != nil {
				errs <- err
				return
			}
			_ = s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := srv.Requests("/api/v1.0/pbx/getproduct"); got != 1 || cache.Fetches() != 1 {
		t.Fatalf("%d sessions asked getproduct %d times (cache fetches %d), want once", n, got, cache.Fetches())
	}
	if got := srv.Requests("/api/v1.0/login"); got != n {
		t.Fatalf("%d logins, want %d", got, n)
	}
}

// TestProductReadAgain: after a switch-over (20104) the next login reads
// getproduct again; after the PBX went away and came back with another
// firmware, a reconnecting socket subscribes with that firmware's topic
// list, which the PBX would refuse otherwise.
func TestProductReadAgain(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	cache := pbx.NewProductCache()
	cfg := func(number string) pbx.Config {
		c := fastConfig(t, srv, srv.AddExtension(pbxtest.Extension{Number: number}))
		c.ProductCache = cache
		return c
	}
	products := func() int { return srv.Requests("/api/v1.0/pbx/getproduct") }
	s1 := open(t, srv, cfg("1001"))
	s2 := open(t, srv, cfg("1002"))
	if products() != 1 {
		t.Fatalf("getproduct asked %d times for two logins, want 1", products())
	}

	srv.Notify("1001", pbx.TypeHotStandby, map[string]any{})
	awaitEvent(t, s1, func(st *pbx.SocketState) bool { return st.Resubscribed })
	open(t, srv, cfg("1003"))
	if products() != 2 {
		t.Fatalf("getproduct asked %d times, want 2: read again after the switch-over", products())
	}

	const older = "37.9.0.1" // before 20153 and 20154
	srv.SetVersion(older)
	lists := len(srv.TopicLists("1002"))
	srv.DropSockets("1002")
	awaitEvent(t, s2, func(st *pbx.SocketState) bool { return st.Up && st.Reconnect })
	subscribed(t, srv, "1002", lists+1)
	want := pbx.Topics(older, pbx.UserAgentWebClient)
	if got := srv.TopicLists("1002"); !slices.Equal(got[len(got)-1], want) {
		t.Fatalf("topic list after the upgrade %v, want %v", got[len(got)-1], want)
	}
	if !slices.Equal(s2.Topics(), want) || s2.Product().Version != older {
		t.Fatalf("session topics %v, version %q; want %v and %q", s2.Topics(), s2.Product().Version, want, older)
	}
	if products() != 3 {
		t.Fatalf("getproduct asked %d times, want 3", products())
	}
}

// TestSharedConfig: sessions made from one Shared configuration share its
// CA pool, its ProductCache and its TLS sessions: after the first socket,
// the others resume a TLS session instead of a full handshake.
func TestSharedConfig(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	caFile := t.TempDir() + "/ca.pem"
	if err := srv.WriteCAFile(caFile); err != nil {
		t.Fatal(err)
	}
	base := fastConfig(t, srv, pbxtest.Extension{})
	base.RootCAs, base.CAFile = nil, caFile
	shared, err := base.Shared()
	if err != nil {
		t.Fatal(err)
	}
	if shared.CAFile != "" || shared.RootCAs == nil || shared.SessionCache == nil || shared.ProductCache == nil {
		t.Fatalf("Shared left CAFile %q, RootCAs %v, SessionCache %v, ProductCache %v", shared.CAFile, shared.RootCAs != nil, shared.SessionCache != nil, shared.ProductCache != nil)
	}
	again, err := shared.Shared()
	if err != nil || again.RootCAs != shared.RootCAs || again.SessionCache != shared.SessionCache || again.ProductCache != shared.ProductCache {
		t.Fatalf("Shared of a shared configuration replaced what it had (err %v)", err)
	}
	for _, n := range []string{"1001", "1002", "1003"} {
		ext := srv.AddExtension(pbxtest.Extension{Number: n})
		cfg := shared
		cfg.Username, cfg.Secret = ext.Number, ext.Secret
		open(t, srv, cfg)
	}
	if srv.ResumedSockets("1002") != 1 || srv.ResumedSockets("1003") != 1 {
		t.Fatalf("resumed sockets: 1001 %d, 1002 %d, 1003 %d; want the later ones resumed",
			srv.ResumedSockets("1001"), srv.ResumedSockets("1002"), srv.ResumedSockets("1003"))
	}
	if got := srv.Requests("/api/v1.0/pbx/getproduct"); got != 1 {
		t.Fatalf("getproduct asked %d times, want 1", got)
	}
}
