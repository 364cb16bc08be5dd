package openapi_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

func TestExtensionList(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	var want []string
	for i := range 250 {
		n := fmt.Sprint(1000 + i)
		srv.AddExtension(pbxtest.Extension{Number: n, Name: "Name " + n})
		want = append(want, n)
	}
	ext, _ := srv.Extension("1007")
	linkusOnline(t, srv, ext)
	o := newOpenAPI(t, openAPIConfig(t, srv, newFakeClock()))
	list, err := o.Extensions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := numbers(list); !slices.Equal(got, want) {
		t.Fatalf("numbers %v", got)
	}
	if n := oaRequests(srv, "extension/list"); n != 3 {
		t.Fatalf("extension/list requests %d, want 3", n)
	}
	wantInfo := openapi.Extension{ID: 8, Number: "1007", Name: "Name 1007", RoleName: "Employee", PresenceStatus: "available",
		Online: openapi.OnlineStatus{LinkusWeb: true}}
	if list[7] != wantInfo {
		t.Fatalf("list[7] = %+v, want %+v", list[7], wantInfo)
	}
	if list[8].Online.LinkusWeb {
		t.Fatal("1008 online without a session")
	}

	// Exactly two full pages: two requests.
	for i := 200; i < 250; i++ {
		srv.DeleteExtension(fmt.Sprint(1000 + i))
	}
	if list, err := o.Extensions(context.Background()); err != nil || len(list) != 200 || oaRequests(srv, "extension/list") != 5 {
		t.Fatalf("200 extensions: %d, %v, %d requests in all", len(list), err, oaRequests(srv, "extension/list"))
	}
}

func numbers(list []openapi.Extension) []string {
	var out []string
	for _, e := range list {
		out = append(out, e.Number)
	}
	return out
}

// TestExtensionListHostile pages lists that a firmware might serve: every
// listing ends, within a bound set by what the PBX returned, and says when
// it cannot be trusted to be complete.
func TestExtensionListHostile(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	var all []string
	for i := range 250 {
		n := fmt.Sprint(1000 + i)
		srv.AddExtension(pbxtest.Extension{Number: n})
		all = append(all, n)
	}
	o := newOpenAPI(t, openAPIConfig(t, srv, newFakeClock()))
	for _, c := range []struct {
		name         string
		faults       pbxtest.ListFaults
		want         []string // nil: only the count is checked
		wantLen      int
		incomplete   bool
		wantRequests int
	}{
		{"well behaved", pbxtest.ListFaults{}, all, 250, false, 3},
		{"page size capped at 40", pbxtest.ListFaults{MaxPageSize: 40}, all, 250, false, 7},
		// A list that ends before its own total is not the whole list.
		{"total too high", pbxtest.ListFaults{TotalNumber: 100000}, all, 250, true, 3},
		{"page 2 empty", pbxtest.ListFaults{EmptyPage: 2}, all[:100], 100, true, 2},
		{"page 1 empty", pbxtest.ListFaults{EmptyPage: 1}, []string{}, 0, true, 1},
		{"page 3 empty, no total", pbxtest.ListFaults{EmptyPage: 3, TotalNumber: -1}, all[:200], 200, false, 3},
		{"total too low", pbxtest.ListFaults{TotalNumber: 10}, all, 250, false, 3},
		{"no total", pbxtest.ListFaults{TotalNumber: -1}, all, 250, false, 3},
		{"loose types", pbxtest.ListFaults{LooseTypes: true}, all, 250, false, 3},
		{"page ignored", pbxtest.ListFaults{IgnorePage: true}, all[:100], 100, true, 2},
		{"endless, no total", pbxtest.ListFaults{Endless: true, TotalNumber: -1}, nil, openapi.MaxListedExtensions, true, openapi.MaxListedExtensions / openapi.ExtensionPageSize},
		{"endless, true total", pbxtest.ListFaults{Endless: true}, nil, openapi.MaxListedExtensions, true, openapi.MaxListedExtensions / openapi.ExtensionPageSize},
		{"endless, total too high", pbxtest.ListFaults{Endless: true, TotalNumber: 1 << 30}, nil, openapi.MaxListedExtensions, true, openapi.MaxListedExtensions / openapi.ExtensionPageSize},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv.SetListFaults(c.faults)
			before := oaRequests(srv, "extension/list")
			list, err := o.Extensions(context.Background())
			if got := errors.Is(err, openapi.ErrExtensionListIncomplete); got != c.incomplete || (err != nil && !got) {
				t.Fatalf("err %v, want incomplete %v", err, c.incomplete)
			}
			if len(list) != c.wantLen || (c.want != nil && !slices.Equal(numbers(list), c.want)) {
				t.Fatalf("%d extensions, want %d", len(list), c.wantLen)
			}
			if n := oaRequests(srv, "extension/list") - before; n != c.wantRequests {
				t.Fatalf("%d requests, want %d", n, c.wantRequests)
			}
		})
	}
	srv.SetListFaults(pbxtest.ListFaults{LooseTypes: true})
	list, err := o.Extensions(context.Background())
	if err != nil || list[3].ID != 4 || list[3].Number != "1003" {
		t.Fatalf("loose types: %+v, %v", list[3], err)
	}
}

func TestExtensionListRefused(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.SetListAllowed(false)
	o := newOpenAPI(t, openAPIConfig(t, srv, newFakeClock()))
	list, err := o.Extensions(context.Background())
	var oe *openapi.Error
	if !errors.Is(err, openapi.ErrExtensionListRefused) || !errors.As(err, &oe) || oe.ErrCode != 10011 || list != nil {
		t.Fatalf("Extensions with credentials that may not list: %v, %v", list, err)
	}
	if n := oaRequests(srv, "extension/list"); n != 2 {
		t.Fatalf("extension/list requests %d, want 2 (one retry)", n)
	}
	// Signing still works with the same credentials.
	if _, err := o.Sign(context.Background(), "1001"); err != nil {
		t.Fatal(err)
	}
}

// TestExtensionListMalformedAnswers serves answers that the simulator never
// gives, from a minimal TLS server: none may read as an empty list, which
// would make a bridge stop serving every extension.
func TestExtensionListMalformedAnswers(t *testing.T) {
	for _, c := range []struct {
		name    string
		answer  string
		want    int  // extensions
		wantErr bool // a *pbx.TransportError
	}{
		{"no data", `{"errcode":0,"errmsg":"SUCCESS","total_number":3}`, 0, true},
		{"null data, no total", `{"errcode":0,"errmsg":"SUCCESS","data":null}`, 0, true},
		{"data an object", `{"errcode":0,"errmsg":"SUCCESS","data":{"number":"1001"},"total_number":1}`, 0, true},
		{"not JSON", `<html>busy</html>`, 0, true},
		{"no errcode", `{"data":[{"number":"1001"}],"total_number":1}`, 0, true},
		{"empty by total_number", `{"errcode":0,"errmsg":"SUCCESS","total_number":0}`, 0, false},
		{"quoted numbers", `{"errcode":"0","errmsg":"SUCCESS","data":[{"id":"1","number":"1001"}],"total_number":"1"}`, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				switch r.URL.Path {
				case "/openapi/v1.0/get_token":
					fmt.Fprint(w, `{"errcode":0,"errmsg":"SUCCESS","access_token":"access-token-1","access_token_expire_time":1800,"refresh_token":"refresh-token-1","refresh_token_expire_time":86400}`)
				case "/openapi/v1.0/extension/list":
					fmt.Fprint(w, c.answer)
				default:
					fmt.Fprint(w, `{"errcode":0,"errmsg":"SUCCESS"}`)
				}
			}))
			defer srv.Close()
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			o := newOpenAPI(t, openapi.Config{URL: srv.URL, AccessID: "id", AccessKey: "key", RootCAs: pool, Logger: testLogger(t)})
			list, err := o.Extensions(context.Background())
			var te *pbx.TransportError
			if errors.As(err, &te) != c.wantErr || (err != nil && !c.wantErr) || len(list) != c.want {
				t.Fatalf("Extensions: %d extensions, %v; want %d, transport error %v", len(list), err, c.want, c.wantErr)
			}
		})
	}
}

func TestExtensionListDecodesLoosely(t *testing.T) {
	for _, c := range []struct {
		item string
		want openapi.Extension
		ok   bool
	}{
		{`{"id":7,"number":"1001","caller_id_name":"Ann"}`, openapi.Extension{ID: 7, Number: "1001", Name: "Ann"}, true},
		{`{"id":"7","number":1001}`, openapi.Extension{ID: 7, Number: "1001"}, true},
		{`{"id":7.5,"number":" 1001 "}`, openapi.Extension{Number: "1001"}, true},
		{`{"number":"1001","online_status":{"sip_phone":{"status":1},"linkus_web":{"status":"1"},"linkus_mobile":{"status":2},"linkus_desktop":1}}`,
			openapi.Extension{Number: "1001", Online: openapi.OnlineStatus{SIPPhone: true, LinkusWeb: true}}, true},
		{`{"number":"1001","email_addr":null,"mobile_number":5551234,"role_name":["x"],"presence_status":"away"}`,
			openapi.Extension{Number: "1001", MobileNumber: "5551234", PresenceStatus: "away"}, true},
		{`{"id":7,"number":1001.5}`, openapi.Extension{}, false},
		{`{"id":7,"number":-1}`, openapi.Extension{}, false},
		{`{"id":7}`, openapi.Extension{}, false},
		{`{"id":7,"number":""}`, openapi.Extension{}, false},
		{`"1001"`, openapi.Extension{}, false},
		{`null`, openapi.Extension{}, false},
	} {
		got, ok := openapi.DecodeExtension(c.item)
		if ok != c.ok || got != c.want {
			t.Errorf("%s: %+v %v, want %+v %v", c.item, got, ok, c.want, c.ok)
		}
	}
}
