package pbx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestClientEndpoints calls every endpoint of one client in the order a
// session does (before login, login, the reads, CDR queries, logout): long,
// but split the client's login state would travel between the parts.
func TestClientEndpoints(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001", Name: "Alice"})
	srv.AddExtension(pbxtest.Extension{Number: "2002", Name: "Bob"})
	var requests recorder
	cfg := fastConfig(t, srv, ext)
	cfg.Hooks.Request = func(endpoint string, d time.Duration, err error) {
		if d <= 0 {
			t.Errorf("request %s took %v", endpoint, d)
		}
		requests.Add(endpoint)
	}
	c, err := pbx.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()

	product, err := c.GetProduct(ctx)
	if err != nil {
		t.Fatalf("GetProduct: %v", err)
	}
	if product.Version != "37.12.0.10" || product.PlanMode() != "en" || product.Cloud() || product.BaseOEMID == nil || *product.BaseOEMID != 0 {
		t.Errorf("product = %+v", product)
	}
	if _, err := c.GetPersonal(ctx); !errors.Is(err, pbx.ErrPBXAPI) {
		t.Errorf("GetPersonal before login: err = %v, want ErrPBXAPI", err)
	}

	token, err := c.Login(ctx)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if token == "" || c.Token() != token || srv.Logins("1001") != 1 {
		t.Fatalf("after login: token set %v, Token() matches %v, logins %d", token != "", c.Token() == token, srv.Logins("1001"))
	}

	global, err := c.GetPersonalGlobal(ctx)
	if err != nil {
		t.Fatalf("GetPersonalGlobal: %v", err)
	}
	if global.EnbInternalClient != 1 || global.RecordFeatureCode != "*1" || global.TurnPort != 3478 {
		t.Errorf("personal global = %+v", global)
	}

	license, err := c.GetLicense(ctx)
	if err != nil {
		t.Fatalf("GetLicense: %v", err)
	}
	if st, ok := license.Service("video"); !ok || st != 1 {
		t.Errorf("video service = %d %v, want 1", st, ok)
	}
	if st, ok := license.Service("fqdn"); !ok || st != 0 {
		t.Errorf("fqdn service = %d %v, want 0", st, ok)
	}
	if _, ok := license.Service("fax"); ok {
		t.Error("fax service found")
	}

	personal, err := c.GetPersonal(ctx)
	if err != nil {
		t.Fatalf("GetPersonal: %v", err)
	}
	want := pbx.Personal{Extension: pbx.Extension{ID: ext.ID, Number: "1001", Name: "Alice"}, EnbWebClient: 1, EnbDesktopClient: 1, EnbCtlRecord: 1, EnbWebClientCallWaiting: 1}
	if personal != want {
		t.Errorf("personal = %+v, want %+v", personal, want)
	}

	// Three calls a minute apart, oldest first.
	now := time.Now().Truncate(time.Second)
	calls := []pbxtest.Call{
		{Kind: pbxtest.Incoming, Peer: "2002", TalkDuration: 30, Time: now.Add(-3 * time.Minute)},
		{Kind: pbxtest.Outgoing, Peer: "5551234", TalkDuration: 12, Time: now.Add(-2 * time.Minute)},
		{Kind: pbxtest.Missed, Peer: "2002", Time: now.Add(-1 * time.Minute)},
	}
	for _, call := range calls {
		if _, err := srv.Call("1001", call); err != nil {
			t.Fatal(err)
		}
	}
	stored := srv.CDRs("1001")
	// What the PBX has, in the client's types.
	var records []pbx.CDR
	b, _ := json.Marshal(stored)
	if err := json.Unmarshal(b, &records); err != nil {
		t.Fatal(err)
	}

	res, err := c.SearchPersonal(ctx, pbx.CDRQuery{})
	if err != nil {
		t.Fatalf("SearchPersonal: %v", err)
	}
	newestFirst := slices.Clone(records)
	slices.Reverse(newestFirst)
	if res.ErrCode != 0 || res.ErrMsg != "SUCCESS" || res.TotalNumber != 3 || !reflect.DeepEqual(res.Records, newestFirst) {
		t.Fatalf("default query = %+v\nwant records %+v", res, newestFirst)
	}
	if r := res.Records[2]; r.Status != pbx.StatusIncoming || r.Disposition != "ANSWERED" || r.TalkDuration != 30 || r.Extension.ExtNum != "2002" || r.UniqueID == "" {
		t.Errorf("incoming record = %+v", r)
	}

	queries := []struct {
		name string
		q    pbx.CDRQuery
		ids  []int
	}{
		{"missed only", pbx.CDRQuery{Status: pbx.StatusMissed}, []int{records[2].ID}},
		{"outgoing only", pbx.CDRQuery{Status: pbx.StatusOutgoing}, []int{records[1].ID}},
		{"filter", pbx.CDRQuery{Filter: ptr("5551234")}, []int{records[1].ID}},
		{"by id ascending, second page of two", pbx.CDRQuery{SortBy: "id", OrderBy: "asc", Size: 2, Page: 2}, []int{records[2].ID}},
		{"first page of one", pbx.CDRQuery{Size: 1}, []int{records[2].ID}},
	}
	for _, q := range queries {
		res, err := c.SearchPersonal(ctx, q.q)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		var ids []int
		for _, r := range res.Records {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, q.ids) {
			t.Errorf("%s: ids %v, want %v", q.name, ids, q.ids)
		}
	}
	if !res.Records[0].Missed() {
		t.Error("the missed call is not Missed()")
	}

	before := srv.Requests("/api/v1.0/cdr/searchpersonal")
	if _, err := c.SearchPersonal(ctx, pbx.CDRQuery{Size: 1000}); !errors.Is(err, pbx.ErrInvalidQuery) {
		t.Errorf("size 1000: err = %v, want ErrInvalidQuery", err)
	}
	if got := srv.Requests("/api/v1.0/cdr/searchpersonal"); got != before {
		t.Errorf("an invalid query reached the PBX (%d requests, want %d)", got, before)
	}

	srv.FailEndpoint("/api/v1.0/cdr/searchpersonal", 50001, "DATABASE BUSY")
	res, err = c.SearchPersonal(ctx, pbx.CDRQuery{})
	var ae *pbx.APIError
	if !errors.As(err, &ae) || ae.ErrCode != 50001 || ae.ErrMsg != "DATABASE BUSY" || ae.Endpoint != "/api/v1.0/cdr/searchpersonal" || !errors.Is(err, pbx.ErrPBXAPI) {
		t.Fatalf("failing search: err = %#v", err)
	}
	if res == nil || res.ErrCode != 50001 || res.ErrMsg != "DATABASE BUSY" {
		t.Errorf("failing search: result = %+v, want the decoded answer", res)
	}
	srv.FailEndpoint("/api/v1.0/cdr/searchpersonal", 0, "")

	if err := c.Logout(ctx); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if srv.Logouts("1001") != 1 || c.Token() != "" {
		t.Errorf("after logout: logouts %d, token kept %v", srv.Logouts("1001"), c.Token() != "")
	}

	wantEndpoints := []string{"pbx/getproduct", "login", "extension/getpersonalglobal", "licenseservice/get", "extension/getpersonal", "cdr/searchpersonal", "logout"}
	for _, ep := range wantEndpoints {
		if requests.Count(ep) == 0 {
			t.Errorf("Hooks.Request never saw %s (saw %v)", ep, requests.List())
		}
	}
}

func TestBadSecret(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	cfg.Secret = "wrong-signature-0123456789abcdef"
	_, err := pbx.Open(context.Background(), cfg)
	var ae *pbx.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an *APIError", err)
	}
	if ae.ErrCode != 10009 || ae.Endpoint != "/api/v1.0/login" || ae.ErrMsg != "INVALID USERNAME OR PASSWORD" {
		t.Errorf("APIError = %+v", ae)
	}
	if code, ok := pbx.CodeOf(err); !ok || code != pbx.ErrPBXAPI {
		t.Errorf("CodeOf = %v, want PBX_API_ERROR", code)
	}
	msg := err.Error()
	if !strings.Contains(msg, "10009") || !strings.Contains(msg, "login") {
		t.Errorf("error %q does not say what failed", msg)
	}
	if strings.Contains(msg, cfg.Secret) {
		t.Errorf("error %q shows the secret", msg)
	}
	if srv.Logins("1001") != 0 || srv.Logouts("1001") != 0 {
		t.Errorf("logins %d, logouts %d", srv.Logins("1001"), srv.Logouts("1001"))
	}
}

// TestEchoedShortSecret: a PBX that echoes the password it was sent in its
// login error, with a secret of three bytes: neither the error nor any log
// line shows it.
func TestEchoedShortSecret(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.SetEchoPassword(true)
	cfg := fastConfig(t, srv, ext)
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Secret = "q7Z"
	_, err := pbx.Open(context.Background(), cfg)
	var ae *pbx.APIError
	if !errors.As(err, &ae) || ae.ErrCode != 10009 {
		t.Fatalf("err = %v, want the PBX's errcode 10009", err)
	}
	if !strings.Contains(ae.ErrMsg, "PASSWORD: "+pbx.Redacted) {
		t.Errorf("errmsg %q: the PBX did not echo, or the echo is not redacted", ae.ErrMsg)
	}
	if text := err.Error() + "\n" + logs.String(); strings.Contains(text, cfg.Secret) {
		t.Errorf("the secret shows:\n%s", text)
	}
}

func TestGetProductFailures(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)

	srv.FailEndpoint("/api/v1.0/pbx/getproduct", 40002, "PARAMETER ERROR")
	_, err := pbx.Open(context.Background(), cfg)
	var ae *pbx.APIError
	if !errors.Is(err, pbx.ErrGetProductFailed) || !errors.As(err, &ae) || ae.ErrCode != 40002 {
		t.Errorf("errcode: err = %v, want GET_PRODUCT_FAILED with errcode 40002", err)
	}
	srv.FailEndpoint("/api/v1.0/pbx/getproduct", 0, "")

	// Nobody listens any more: a transport error.
	closed := newPBX(t, pbxtest.Options{})
	cfg.URL, cfg.RootCAs = closed.URL(), closed.CertPool()
	closed.Close()
	_, err = pbx.Open(context.Background(), cfg)
	var te *pbx.TransportError
	if !errors.Is(err, pbx.ErrGetProductFailed) || !errors.As(err, &te) {
		t.Errorf("closed PBX: err = %v, want a TransportError wrapping GET_PRODUCT_FAILED", err)
	}
	c, err := pbx.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(context.Background()); !errors.Is(err, pbx.ErrPBXNetwork) || !errors.As(err, &te) {
		t.Errorf("login to a closed PBX: err = %v, want PBX_NETWORK_ERROR", err)
	}
	if srv.Logins("1001") != 0 {
		t.Errorf("logins %d", srv.Logins("1001"))
	}
}

func TestRequestTimeout(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	// Long enough for getproduct (a TLS handshake and a request, under the
	// race detector on a loaded machine) to succeed: only the login may time
	// out. 50ms was not.
	cfg.RequestTimeout = time.Second
	srv.SlowEndpoint("/api/v1.0/login", time.Minute)
	start := time.Now()
	_, err := pbx.Open(context.Background(), cfg)
	if !errors.Is(err, pbx.ErrPBXNetwork) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want PBX_NETWORK_ERROR and a deadline", err)
	}
	if d := time.Since(start); d > wait/2 {
		t.Errorf("Open took %v with a %v request timeout", d, cfg.RequestTimeout)
	}

	// The caller's context is honoured too.
	ctx, cancel := context.WithCancel(context.Background())
	cfg.RequestTimeout = time.Minute
	go func() {
		// Cancel once the login is in flight (or, at worst, after wait).
		for deadline := time.Now().Add(wait); srv.Requests("/api/v1.0/login") < 2 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if _, err := pbx.Open(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Open: err = %v, want context.Canceled", err)
	}
}

func TestInitFailureAfterLoginLogsOut(t *testing.T) {
	// getpersonalglobal is asked in the "cn" plan mode only (BaseOEMID 1).
	for _, tc := range []struct {
		path string
		oem  int
	}{
		{"/api/v1.0/extension/getpersonalglobal", 1},
		{"/api/v1.0/extension/getpersonal", 0},
		{"/api/v1.0/extension/getpersonal", 1},
	} {
		path := tc.path
		t.Run(fmt.Sprintf("%s oem %d", filepath.Base(path), tc.oem), func(t *testing.T) {
			srv := newPBX(t, pbxtest.Options{BaseOEMID: tc.oem})
			ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
			srv.FailEndpoint(path, 50000, "INTERNAL ERROR")
			_, err := pbx.Open(context.Background(), fastConfig(t, srv, ext))
			var ae *pbx.APIError
			if !errors.As(err, &ae) || ae.Endpoint != path || ae.ErrCode != 50000 || !errors.Is(err, pbx.ErrPBXAPI) {
				t.Fatalf("err = %v, want an APIError of %s", err, path)
			}
			if srv.Logins("1001") != 1 || srv.Logouts("1001") != 1 {
				t.Errorf("logins %d, logouts %d; want 1 and 1", srv.Logins("1001"), srv.Logouts("1001"))
			}
			if n := srv.Requests("/api/v1.0/subscribe"); n != 0 {
				t.Errorf("%d subscribe requests after a failed init", n)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})

	t.Run("system roots do not know the PBX", func(t *testing.T) {
		cfg := fastConfig(t, srv, ext)
		cfg.RootCAs = nil
		_, err := pbx.Open(context.Background(), cfg)
		var te *pbx.TransportError
		if !errors.Is(err, pbx.ErrGetProductFailed) || !errors.As(err, &te) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want a certificate failure", err)
		}
	})
	t.Run("CAFile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "pbx-ca.pem")
		if err := srv.WriteCAFile(path); err != nil {
			t.Fatal(err)
		}
		cfg := fastConfig(t, srv, ext)
		cfg.RootCAs, cfg.CAFile = nil, path
		s := open(t, srv, cfg)
		if s.Host() != strings.TrimPrefix(srv.URL(), "https://") {
			t.Errorf("Host = %q", s.Host())
		}
	})
	t.Run("CAFile and RootCAs", func(t *testing.T) {
		cfg := fastConfig(t, srv, ext)
		cfg.CAFile = "/nonexistent.pem"
		if _, err := pbx.Open(context.Background(), cfg); !errors.Is(err, pbx.ErrInvalidConfig) {
			t.Fatalf("err = %v, want ErrInvalidConfig", err)
		}
	})
	t.Run("InsecureSkipVerify", func(t *testing.T) {
		cfg := fastConfig(t, srv, ext)
		cfg.RootCAs, cfg.InsecureSkipVerify = nil, true
		s := open(t, srv, cfg) // the socket is up too: it shares the TLS settings
		if _, err := s.CDRQuery(context.Background(), pbx.CDRQuery{}); err != nil {
			t.Fatal(err)
		}
	})
}
