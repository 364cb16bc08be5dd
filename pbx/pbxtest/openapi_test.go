package pbxtest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// oaUserAgent is the User-Agent of the tests' OpenAPI requests.
const oaUserAgent = "pbxtest-test"

// oa sends an OpenAPI request: a JSON body for POST, the token (if any) as
// the escaped access_token parameter, and a User-Agent. It returns the
// status and the decoded answer.
func (p *testPBX) oa(method, ep, token string, query url.Values, body any) (int, map[string]any) {
	p.t.Helper()
	return p.oaRaw(method, ep, token, query, body, http.Header{"User-Agent": {oaUserAgent}})
}

func (p *testPBX) oaRaw(method, ep, token string, query url.Values, body any, header http.Header) (int, map[string]any) {
	p.t.Helper()
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	if token != "" {
		q.Set("access_token", token)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	u := p.URL() + "/openapi/v1.0/" + ep
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header = header.Clone()
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, ep, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		p.t.Fatalf("%s %s: answer is not a JSON object: %v", method, ep, err)
	}
	return resp.StatusCode, out
}

// tokenPair gets a pair with the server's credentials, failing the test
// on any errcode.
func (p *testPBX) tokenPair() (access, refresh string) {
	p.t.Helper()
	id, key := p.OpenAPICredentials()
	_, out := p.oa(http.MethodPost, "get_token", "", nil, map[string]string{"username": id, "password": key})
	if errcode(out) != 0 {
		p.t.Fatalf("get_token: %v", out)
	}
	access, _ = out["access_token"].(string)
	refresh, _ = out["refresh_token"].(string)
	if access == "" || refresh == "" {
		p.t.Fatalf("get_token: %v", out)
	}
	return access, refresh
}

// sign mints a signature for ext and returns the answer.
func (p *testPBX) sign(token, ext string) map[string]any {
	p.t.Helper()
	_, out := p.oa(http.MethodPost, "sign/create", token, nil, map[string]any{"username": ext, "sign_type": "sdk", "expire_time": 0})
	return out
}

func signOf(t *testing.T, out map[string]any) string {
	t.Helper()
	data, _ := out["data"].(map[string]any)
	sign, _ := data["sign"].(string)
	if errcode(out) != 0 || sign == "" {
		t.Fatalf("sign/create: %v", out)
	}
	return sign
}

// tokenValid reports whether the OpenAPI accepts the access token (a
// listing succeeds).
func (p *testPBX) tokenValid(token string) bool {
	p.t.Helper()
	_, out := p.oa(http.MethodGet, "extension/list", token, nil, nil)
	return errcode(out) == 0
}

func TestOpenAPIGetToken(t *testing.T) {
	p := start(t, pbxtest.Options{})
	id, key := p.OpenAPICredentials()
	_, out := p.oa(http.MethodPost, "get_token", "", nil, map[string]string{"username": id, "password": key})
	if errcode(out) != 0 || out["errmsg"] != "SUCCESS" {
		t.Fatalf("get_token: %v", out)
	}
	for k, want := range map[string]float64{"access_token_expire_time": 1800, "refresh_token_expire_time": 86400} {
		if out[k] != want {
			t.Errorf("%s = %v, want %v", k, out[k], want)
		}
	}
	access, _ := out["access_token"].(string)
	if !strings.ContainsAny(access, "+/") {
		t.Errorf("access token %q has no character that needs escaping", access)
	}
	if !p.tokenValid(access) {
		t.Fatal("fresh token refused")
	}
	if p.GetTokenCalls() != 1 || p.LiveOpenAPITokens() != 1 || p.MaxLiveOpenAPITokens() != 1 {
		t.Fatalf("calls %d, live %d, max %d; want 1, 1, 1", p.GetTokenCalls(), p.LiveOpenAPITokens(), p.MaxLiveOpenAPITokens())
	}
	// An OpenAPI token is not a Linkus session.
	if p.valid(access) {
		t.Fatal("the Linkus API accepted an OpenAPI token")
	}
}

// TestOpenAPIStrict checks that the OpenAPI refuses what the reference
// says a client does not send.
func TestOpenAPIStrict(t *testing.T) {
	p := start(t, pbxtest.Options{})
	id, key := p.OpenAPICredentials()
	access, _ := p.tokenPair()
	creds := map[string]string{"username": id, "password": key}
	ua := http.Header{"User-Agent": {oaUserAgent}}
	for _, c := range []struct {
		name        string
		method, ep  string
		token       string
		query       url.Values
		body        any
		header      http.Header
		wantStatus  int
		wantErrcode int
	}{
		{"no user agent", http.MethodPost, "get_token", "", nil, creds, http.Header{"User-Agent": {""}}, http.StatusForbidden, 40002},
		{"Go's default user agent", http.MethodPost, "get_token", "", nil, creds, http.Header{}, http.StatusForbidden, 40002},
		{"wrong key", http.MethodPost, "get_token", "", nil, map[string]string{"username": id, "password": key + "x"}, ua, 200, 10009},
		{"extra key", http.MethodPost, "get_token", "", nil, map[string]string{"username": id, "password": key, "x": ""}, ua, 200, 40002},
		{"password not a string", http.MethodPost, "get_token", "", nil, map[string]any{"username": id, "password": 1}, ua, 200, 40002},
		{"form body", http.MethodPost, "get_token", "", nil, creds, http.Header{"User-Agent": {oaUserAgent}, "Content-Type": {"application/x-www-form-urlencoded"}}, 200, 40002},
		{"GET get_token", http.MethodGet, "get_token", "", nil, nil, ua, http.StatusMethodNotAllowed, 10001},
		{"no token", http.MethodGet, "extension/list", "", nil, nil, ua, 200, 10004},
		{"token in a header", http.MethodGet, "extension/list", "", nil, nil, http.Header{"User-Agent": {oaUserAgent}, "Authorization": {access}}, 200, 10004},
		{"token in the query and a header", http.MethodGet, "extension/list", access, nil, nil, http.Header{"User-Agent": {oaUserAgent}, "Authorization": {access}}, 200, 10004},
		{"unknown parameter", http.MethodGet, "extension/list", access, url.Values{"filter": {"1"}}, nil, ua, 200, 40002},
		{"bad sort_by", http.MethodGet, "extension/list", access, url.Values{"sort_by": {"time"}}, nil, ua, 200, 40002},
		{"page 0", http.MethodGet, "extension/list", access, url.Values{"page": {"0"}}, nil, ua, 200, 40002},
		{"sign_type not sdk", http.MethodPost, "sign/create", access, nil, map[string]any{"username": "1001", "sign_type": "web", "expire_time": 0}, ua, 200, 40002},
		{"expire_time not 0", http.MethodPost, "sign/create", access, nil, map[string]any{"username": "1001", "sign_type": "sdk", "expire_time": 60}, ua, 200, 40002},
		{"unknown extension", http.MethodPost, "sign/create", access, nil, map[string]any{"username": "4242", "sign_type": "sdk", "expire_time": 0}, ua, 200, 40003},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := p.oaRaw(c.method, c.ep, c.token, c.query, c.body, c.header)
			if status != c.wantStatus || errcode(out) != c.wantErrcode {
				t.Fatalf("HTTP %d %v, want HTTP %d errcode %d", status, out, c.wantStatus, c.wantErrcode)
			}
		})
	}

	// A token pasted into the query unescaped arrives with a space for its
	// '+' and is refused.
	req, _ := http.NewRequest(http.MethodGet, p.URL()+"/openapi/v1.0/extension/list?access_token="+access, nil)
	req.Header.Set("User-Agent", oaUserAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if errcode(out) != 10004 {
		t.Fatalf("unescaped token: %v, want errcode 10004", out)
	}
}

func TestOpenAPITokenCap(t *testing.T) {
	p := start(t, pbxtest.Options{})
	var tokens []string
	for range pbxtest.MaxOpenAPITokens {
		access, _ := p.tokenPair()
		tokens = append(tokens, access)
	}
	id, key := p.OpenAPICredentials()
	_, out := p.oa(http.MethodPost, "get_token", "", nil, map[string]string{"username": id, "password": key})
	if errcode(out) != 10012 {
		t.Fatalf("ninth get_token: %v, want errcode 10012", out)
	}
	for i, tok := range tokens {
		if !p.tokenValid(tok) {
			t.Fatalf("token %d invalidated by the refused ninth", i)
		}
	}
	// Revoking one makes room for one.
	if _, out := p.oa(http.MethodGet, "del_token", tokens[0], nil, nil); errcode(out) != 0 {
		t.Fatalf("del_token: %v", out)
	}
	if p.tokenValid(tokens[0]) {
		t.Fatal("revoked token still accepted")
	}
	p.tokenPair()
	if p.LiveOpenAPITokens() != 8 || p.MaxLiveOpenAPITokens() != 8 || p.GetTokenCalls() != 10 {
		t.Fatalf("live %d, max %d, calls %d; want 8, 8, 10", p.LiveOpenAPITokens(), p.MaxLiveOpenAPITokens(), p.GetTokenCalls())
	}
}

func TestOpenAPIRefreshToken(t *testing.T) {
	for _, revokesOld := range []bool{false, true} {
		t.Run(fmt.Sprintf("revokesOld=%v", revokesOld), func(t *testing.T) {
			p := start(t, pbxtest.Options{})
			p.SetRefreshRevokesOld(revokesOld)
			access, refresh := p.tokenPair()
			_, out := p.oa(http.MethodPost, "refresh_token", "", nil, map[string]string{"refresh_token": refresh})
			newAccess, _ := out["access_token"].(string)
			if errcode(out) != 0 || newAccess == "" || newAccess == access || out["refresh_token"] == refresh {
				t.Fatalf("refresh_token: %v", out)
			}
			if !p.tokenValid(newAccess) || p.tokenValid(access) == revokesOld {
				t.Fatalf("new token valid %v, old token valid %v", p.tokenValid(newAccess), p.tokenValid(access))
			}
			// A refresh token is used up.
			if _, out := p.oa(http.MethodPost, "refresh_token", "", nil, map[string]string{"refresh_token": refresh}); errcode(out) != 10004 {
				t.Fatalf("second refresh with the same token: %v, want 10004", out)
			}
			if p.RefreshCalls() != 2 || p.GetTokenCalls() != 1 {
				t.Fatalf("refresh calls %d, get_token calls %d; want 2, 1", p.RefreshCalls(), p.GetTokenCalls())
			}
		})
	}
}

func TestOpenAPITokenExpiry(t *testing.T) {
	p := start(t, pbxtest.Options{})
	id, key := p.OpenAPICredentials()
	getPair := func() (access, refresh string) {
		_, out := p.oa(http.MethodPost, "get_token", "", nil, map[string]string{"username": id, "password": key})
		if out["access_token_expire_time"] != 1.0 {
			t.Fatalf("access_token_expire_time %v, want 1 (rounded up)", out["access_token_expire_time"])
		}
		access, _ = out["access_token"].(string)
		refresh, _ = out["refresh_token"].(string)
		return access, refresh
	}
	refreshErrcode := func(refresh string) int {
		_, out := p.oa(http.MethodPost, "refresh_token", "", nil, map[string]string{"refresh_token": refresh})
		return errcode(out)
	}

	// A refresh token outlives its access token.
	p.SetTokenLifetime(100*time.Millisecond, time.Hour)
	access, refresh := getPair()
	eventually(t, "access token expiry", func() bool { return p.LiveOpenAPITokens() == 0 })
	if p.tokenValid(access) {
		t.Fatal("expired access token accepted")
	}
	if got := refreshErrcode(refresh); got != 0 {
		t.Fatalf("refresh after the access token expired: errcode %d", got)
	}

	// Issued together with the same lifetime, both have expired once the
	// access token has.
	p.SetTokenLifetime(100*time.Millisecond, 100*time.Millisecond)
	p.RevokeOpenAPITokens()
	_, refresh = getPair()
	eventually(t, "access token expiry", func() bool { return p.LiveOpenAPITokens() == 0 })
	if got := refreshErrcode(refresh); got != 10004 {
		t.Fatalf("expired refresh token: errcode %d, want 10004", got)
	}
}

func TestOpenAPISignatureLogsIn(t *testing.T) {
	for _, invalidates := range []bool{false, true} {
		t.Run(fmt.Sprintf("invalidatesOld=%v", invalidates), func(t *testing.T) {
			p := start(t, pbxtest.Options{})
			p.SetSignInvalidatesOld(invalidates)
			ext := p.AddExtension(pbxtest.Extension{Number: "1001"})
			access, _ := p.tokenPair()
			first := signOf(t, p.sign(access, "1001"))
			if errcode(p.loginAs("1001", first)) != 0 {
				t.Fatal("login with a minted signature refused")
			}
			second := signOf(t, p.sign(access, "1001"))
			if second == first {
				t.Fatal("the same signature minted twice")
			}
			if errcode(p.loginAs("1001", second)) != 0 {
				t.Fatal("login with the newest signature refused")
			}
			if got := errcode(p.loginAs("1001", first)); (got == 0) == invalidates {
				t.Fatalf("login with the older signature: errcode %d", got)
			}
			if errcode(p.loginAs("1001", ext.Secret)) != 0 {
				t.Fatal("the configured secret stopped working")
			}
			if errcode(p.loginAs("1002", second)) == 0 {
				t.Fatal("a signature of 1001 logged 1002 in")
			}
			if p.SignsMinted("1001") != 2 {
				t.Fatalf("SignsMinted = %d, want 2", p.SignsMinted("1001"))
			}
			p.RevokeSignatures("1001")
			if errcode(p.loginAs("1001", second)) == 0 {
				t.Fatal("a revoked signature logged in")
			}
		})
	}
}

func TestOpenAPISignFaults(t *testing.T) {
	p := start(t, pbxtest.Options{})
	p.AddExtension(pbxtest.Extension{Number: "1001"})
	access, _ := p.tokenPair()
	p.FailSign(true)
	if got := errcode(p.sign(access, "1001")); got != 70052 {
		t.Fatalf("sign/create with FailSign: errcode %d, want 70052", got)
	}
	p.FailSign(false)
	sign := signOf(t, p.sign(access, "1001"))
	p.DeleteExtension("1001")
	if got := errcode(p.sign(access, "1001")); got != 40003 {
		t.Fatalf("sign/create for a deleted extension: errcode %d, want 40003", got)
	}
	p.AddExtension(pbxtest.Extension{Number: "1001"})
	if errcode(p.loginAs("1001", sign)) == 0 {
		t.Fatal("a signature of the deleted extension logged its successor in")
	}
	if p.SignsMinted("1001") != 1 {
		t.Fatalf("SignsMinted = %d, want 1", p.SignsMinted("1001"))
	}
}

// listPage returns the numbers of a page of extension/list and its
// total_number (-1 if absent).
func (p *testPBX) listPage(token string, q url.Values) ([]string, int) {
	p.t.Helper()
	_, out := p.oa(http.MethodGet, "extension/list", token, q, nil)
	if errcode(out) != 0 {
		p.t.Fatalf("extension/list %v: %v", q, out)
	}
	data, ok := out["data"].([]any)
	if !ok {
		p.t.Fatalf("extension/list: data is %T", out["data"])
	}
	var numbers []string
	for _, item := range data {
		m, _ := item.(map[string]any)
		numbers = append(numbers, fmt.Sprint(m["number"]))
	}
	total := -1
	if n, ok := out["total_number"].(float64); ok {
		total = int(n)
	}
	return numbers, total
}

func TestOpenAPIExtensionList(t *testing.T) {
	p := start(t, pbxtest.Options{})
	for _, n := range []string{"1003", "1001", "1002"} {
		p.AddExtension(pbxtest.Extension{Number: n, Name: "Name " + n})
	}
	access, _ := p.tokenPair()

	_, out := p.oa(http.MethodGet, "extension/list", access, url.Values{"page": {"1"}, "page_size": {"2"}, "sort_by": {"number"}, "order_by": {"asc"}}, nil)
	want := `{"data":[` +
		`{"caller_id_name":"Name 1001","email_addr":"","id":2,"mobile_number":"","number":"1001","online_status":{"linkus_desktop":{"status":0},"linkus_mobile":{"status":0},"linkus_web":{"status":0},"sip_phone":{"status":0}},"presence_status":"available","role_name":"Employee"},` +
		`{"caller_id_name":"Name 1002","email_addr":"","id":3,"mobile_number":"","number":"1002","online_status":{"linkus_desktop":{"status":0},"linkus_mobile":{"status":0},"linkus_web":{"status":0},"sip_phone":{"status":0}},"presence_status":"available","role_name":"Employee"}` +
		`],"errcode":0,"errmsg":"SUCCESS","total_number":3}`
	if got, _ := json.Marshal(out); string(got) != want {
		t.Fatalf("page 1:\n got %s\nwant %s", got, want)
	}
	for _, c := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{"page": {"2"}, "page_size": {"2"}, "sort_by": {"number"}}, "[1003]"},
		{url.Values{"page": {"3"}, "page_size": {"2"}}, "[]"},
		{url.Values{}, "[1003 1001 1002]"}, // by id
		{url.Values{"sort_by": {"number"}, "order_by": {"desc"}}, "[1003 1002 1001]"},
	} {
		if got, total := p.listPage(access, c.q); fmt.Sprint(got) != c.want || total != 3 {
			t.Errorf("%v: %v total %d, want %s total 3", c.q, got, total, c.want)
		}
	}

	// Online status follows the subscribe socket.
	token := p.login(pbxtest.Extension{Number: "1002", Secret: mustSecret(t, p, "1002")})
	p.subscribe("1002", token, newFirmwareTopics...)
	_, out = p.oa(http.MethodGet, "extension/list", access, url.Values{"sort_by": {"number"}}, nil)
	web := out["data"].([]any)[1].(map[string]any)["online_status"].(map[string]any)["linkus_web"]
	if fmt.Sprint(web) != "map[status:1]" {
		t.Fatalf("linkus_web of 1002 with a live socket = %v", web)
	}

	// Run-time changes show in the next listing.
	p.DeleteExtension("1001")
	p.AddExtension(pbxtest.Extension{Number: "1000"})
	if got, total := p.listPage(access, url.Values{"sort_by": {"number"}}); fmt.Sprint(got) != "[1000 1002 1003]" || total != 3 {
		t.Fatalf("after delete and add: %v total %d", got, total)
	}

	p.SetListAllowed(false)
	if _, out := p.oa(http.MethodGet, "extension/list", access, nil, nil); errcode(out) != 10011 {
		t.Fatalf("listing denied: %v, want errcode 10011", out)
	}
}

func mustSecret(t *testing.T, p *testPBX, number string) string {
	t.Helper()
	e, ok := p.Extension(number)
	if !ok {
		t.Fatalf("no extension %s", number)
	}
	return e.Secret
}

func TestOpenAPIListFaults(t *testing.T) {
	p := start(t, pbxtest.Options{})
	for i := range 5 {
		p.AddExtension(pbxtest.Extension{Number: fmt.Sprint(1001 + i)})
	}
	access, _ := p.tokenPair()
	q := func(page, size int) url.Values {
		return url.Values{"page": {fmt.Sprint(page)}, "page_size": {fmt.Sprint(size)}, "sort_by": {"number"}}
	}
	for _, c := range []struct {
		name      string
		faults    pbxtest.ListFaults
		page      int
		want      string
		wantTotal int
	}{
		{"capped page size", pbxtest.ListFaults{MaxPageSize: 2}, 2, "[1003 1004]", 5},
		{"lying total", pbxtest.ListFaults{TotalNumber: 1000}, 1, "[1001 1002 1003 1004]", 1000},
		{"no total", pbxtest.ListFaults{TotalNumber: -1}, 2, "[1005]", -1},
		{"ignored page", pbxtest.ListFaults{IgnorePage: true}, 2, "[1001 1002 1003 1004]", 5},
		{"endless", pbxtest.ListFaults{Endless: true}, 3, "[900008 900009 900010 900011]", 5},
		{"loose types", pbxtest.ListFaults{LooseTypes: true}, 1, "[1001 1002 1003 1004]", 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.SetListFaults(c.faults)
			got, total := p.listPage(access, q(c.page, 4))
			if fmt.Sprint(got) != c.want || total != c.wantTotal {
				t.Fatalf("page %d: %v total %d, want %s total %d", c.page, got, total, c.want, c.wantTotal)
			}
		})
	}
	p.SetListFaults(pbxtest.ListFaults{LooseTypes: true})
	_, out := p.oa(http.MethodGet, "extension/list", access, q(1, 1), nil)
	item := out["data"].([]any)[0].(map[string]any)
	if _, isString := item["id"].(string); !isString {
		t.Errorf("loose id is %T", item["id"])
	}
	if _, isNumber := item["number"].(float64); !isNumber {
		t.Errorf("loose number is %T", item["number"])
	}
}

func TestOpenAPICredentialsChange(t *testing.T) {
	p := start(t, pbxtest.Options{})
	access, refresh := p.tokenPair()
	p.SetOpenAPICredentials("new-id", "new-key")
	if p.tokenValid(access) {
		t.Fatal("token valid after the credentials changed")
	}
	if _, out := p.oa(http.MethodPost, "refresh_token", "", nil, map[string]string{"refresh_token": refresh}); errcode(out) != 10004 {
		t.Fatalf("refresh after the credentials changed: %v", out)
	}
	if id, key := p.OpenAPICredentials(); id != "new-id" || key != "new-key" {
		t.Fatalf("credentials %q %q", id, key)
	}
	p.tokenPair()
	p.RevokeOpenAPITokens()
	if p.LiveOpenAPITokens() != 0 {
		t.Fatalf("live tokens after RevokeOpenAPITokens: %d", p.LiveOpenAPITokens())
	}
}
