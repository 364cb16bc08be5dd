package pbxtest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// checkShape fails unless body has exactly the keys want.
func checkShape(t *testing.T, what string, body map[string]any, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := sortedKeys(body); !slices.Equal(got, want) {
		t.Errorf("%s keys %v, want %v", what, got, want)
	}
}

func checkSuccess(t *testing.T, what string, body map[string]any) {
	t.Helper()
	if errcode(body) != 0 || body["errmsg"] != "SUCCESS" {
		t.Fatalf("%s: errcode %v errmsg %v, want 0 SUCCESS", what, body["errcode"], body["errmsg"])
	}
}

func checkError(t *testing.T, what string, body map[string]any, code int, msg string) {
	t.Helper()
	checkShape(t, what, body, "errcode", "errmsg")
	if errcode(body) != code || body["errmsg"] != msg {
		t.Errorf("%s: errcode %v errmsg %v, want %d %q", what, body["errcode"], body["errmsg"], code, msg)
	}
}

func TestGetProduct(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts pbxtest.Options
		want map[string]any
	}{
		{"defaults", pbxtest.Options{}, map[string]any{"base_oem_id": 0.0, "platform_name": "p_series", "version": "37.12.0.10"}},
		{"cn cloud old firmware", pbxtest.Options{BaseOEMID: 1, PlatformName: "p_cloudpbx", Version: "37.11.0.20"},
			map[string]any{"base_oem_id": 1.0, "platform_name": "p_cloudpbx", "version": "37.11.0.20"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, tc.opts)
			body := p.get("/api/v1.0/pbx/getproduct", "", url.Values{"host": {p.host()}})
			checkSuccess(t, "getproduct", body)
			checkShape(t, "getproduct", body, "errcode", "errmsg", "access_type", "product")
			prod, _ := body["product"].(map[string]any)
			checkShape(t, "product", prod, "base_oem_id", "company_name", "disp_dev_name", "oem_id",
				"platform_name", "product_name", "product_type", "version")
			for k, v := range tc.want {
				if prod[k] != v {
					t.Errorf("product.%s = %v, want %v", k, prod[k], v)
				}
			}
		})
	}

	p := start(t, pbxtest.Options{})
	for name, q := range map[string]url.Values{
		"no host":       nil,
		"empty host":    {"host": {""}},
		"repeated host": {"host": {p.host(), p.host()}},
		"without port":  {"host": {"127.0.0.1"}},
		"other host":    {"host": {"localhost:" + strings.Split(p.host(), ":")[1]}},
	} {
		checkError(t, "getproduct "+name, p.get("/api/v1.0/pbx/getproduct", "", q), 40002, "PARAMETER ERROR")
	}
	// The SDK sends its pbxURL's URL.host: the request's host, lower case,
	// without the default port.
	for _, tc := range []struct {
		hostHeader, param string
		ok                bool
	}{
		{"PBX.Example.Test:443", "pbx.example.test", true},
		{"PBX.Example.Test:443", "PBX.Example.Test:443", false},
		{"PBX.Example.Test:443", "pbx.example.test:443", false},
		{"PBX.Example.Test:443", "PBX.Example.Test", false},
		{"Pbx.Example.Test:8443", "pbx.example.test:8443", true},
		{"[FD00::7]:443", "[fd00::7]", true},
		{"[fd00::7]:5443", "[fd00::7]", false},
	} {
		status, body := p.do(http.MethodGet, "/api/v1.0/pbx/getproduct", "", url.Values{"host": {tc.param}}, "", http.Header{"Host": {tc.hostHeader}})
		switch {
		case status != http.StatusOK:
			t.Errorf("Host %s: HTTP %d", tc.hostHeader, status)
		case tc.ok && errcode(body) != 0:
			t.Errorf("Host %s, host=%s: %v, want success", tc.hostHeader, tc.param, body)
		case !tc.ok:
			checkError(t, "Host "+tc.hostHeader+", host="+tc.param, body, 40002, "PARAMETER ERROR")
		}
	}
	if status, _ := p.do(http.MethodPost, "/api/v1.0/pbx/getproduct", "", url.Values{"host": {"h"}}, "{}", nil); status != http.StatusMethodNotAllowed {
		t.Errorf("POST getproduct: HTTP %d, want 405", status)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001", Secret: "s3cret"})
	jsonCT := http.Header{"Content-Type": {"application/json"}}

	for _, tc := range []struct {
		name   string
		body   string
		header http.Header
		code   int
		msg    string
	}{
		{"webclient", `{"username":"1001","password":"s3cret","login_source":null,"login_jump":"sdk"}`, jsonCT, 0, "SUCCESS"},
		{"webpc", `{"username":"1001","password":"s3cret","login_source":"webpc","login_jump":"sdk"}`, jsonCT, 0, "SUCCESS"},
		{"login_source absent", `{"username":"1001","password":"s3cret","login_jump":"sdk"}`, jsonCT, 40002, "PARAMETER ERROR"},
		{"extra key", `{"username":"1001","password":"s3cret","login_source":null,"login_jump":"sdk","user_agent":"x"}`, jsonCT, 40002, "PARAMETER ERROR"},
		{"whitespace", "{ \"username\" : \"1001\",\n\"password\":\"s3cret\", \"login_source\": null, \"login_jump\":\"sdk\" }", jsonCT, 0, "SUCCESS"},
		{"charset parameter", `{"username":"1001","password":"s3cret","login_source":null,"login_jump":"sdk"}`,
			http.Header{"Content-Type": {"application/json;charset=UTF-8"}}, 0, "SUCCESS"},
		{"wrong password", `{"username":"1001","password":"nope","login_source":null,"login_jump":"sdk"}`, jsonCT, 10009, "INVALID USERNAME OR PASSWORD"},
		{"unknown user", `{"username":"1999","password":"s3cret","login_source":null,"login_jump":"sdk"}`, jsonCT, 10009, "INVALID USERNAME OR PASSWORD"},
		{"login_jump missing", `{"username":"1001","password":"s3cret","login_source":null}`, jsonCT, 40002, "PARAMETER ERROR"},
		{"login_jump not sdk", `{"username":"1001","password":"s3cret","login_source":null,"login_jump":"web"}`, jsonCT, 40002, "PARAMETER ERROR"},
		{"login_source unknown", `{"username":"1001","password":"s3cret","login_source":"web","login_jump":"sdk"}`, jsonCT, 40002, "PARAMETER ERROR"},
		{"username a number", `{"username":1001,"password":"s3cret","login_source":null,"login_jump":"sdk"}`, jsonCT, 40002, "PARAMETER ERROR"},
		{"password missing", `{"username":"1001","login_source":null,"login_jump":"sdk"}`, jsonCT, 40002, "PARAMETER ERROR"},
		{"key in other case", `{"Username":"1001","password":"s3cret","login_source":null,"login_jump":"sdk"}`, jsonCT, 40002, "PARAMETER ERROR"},
		{"not JSON", `username=1001&password=s3cret`, jsonCT, 40002, "PARAMETER ERROR"},
		{"JSON array", `[]`, jsonCT, 40002, "PARAMETER ERROR"},
		{"form content type", `{"username":"1001","password":"s3cret","login_source":null,"login_jump":"sdk"}`,
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 40002, "PARAMETER ERROR"},
		{"no content type", `{"username":"1001","password":"s3cret","login_source":null,"login_jump":"sdk"}`, nil, 40002, "PARAMETER ERROR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := p.do(http.MethodPost, "/api/v1.0/login", "", nil, tc.body, tc.header)
			if status != http.StatusOK {
				t.Fatalf("HTTP %d", status)
			}
			if tc.code != 0 {
				checkError(t, "login", body, tc.code, tc.msg)
				return
			}
			checkSuccess(t, "login", body)
			checkShape(t, "login", body, "errcode", "errmsg", "access_token")
			// Tokens need escaping in the socket URL's query string.
			if token, _ := body["access_token"].(string); !regexp.MustCompile(`^[A-Za-z0-9+/]{30}==$`).MatchString(token) ||
				!strings.Contains(token, "+") || !strings.Contains(token, "/") {
				t.Errorf("access_token %q, want 32 characters of base64 with a '+' and a '/'", token)
			}
		})
	}
	if got := p.Logins("1001"); got != 4 {
		t.Errorf("Logins = %d, want 4 (failed logins do not count)", got)
	}
	if status, _ := p.do(http.MethodGet, "/api/v1.0/login", "", nil, "", nil); status != http.StatusMethodNotAllowed {
		t.Errorf("GET login: HTTP %d, want 405", status)
	}

	// Each login gets its own token; earlier ones stay valid (multi-login).
	first, second := p.login(e), p.login(e)
	if first == second {
		t.Fatal("two logins got the same token")
	}
	if !p.valid(first) || !p.valid(second) {
		t.Fatal("an earlier token was invalidated by a new login")
	}
}

func TestAuthenticatedEndpointsRejectBadTokens(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	paths := []string{
		"/api/v1.0/extension/getpersonalglobal", "/api/v1.0/licenseservice/get", "/api/v1.0/extension/getpersonal",
		"/api/v1.0/extension/getregisterinfo", "/api/v1.0/cdr/searchpersonal", "/api/v1.0/logout",
	}
	for name, header := range map[string]http.Header{
		"none":            nil,
		"bearer":          {"Authorization": {"Bearer " + token}},
		"unknown":         {"Authorization": {"0123456789abcdef0123456789abcdef"}},
		"twice":           {"Authorization": {token, token}},
		"token in query":  nil, // access_token in the query is for the socket only
		"other case":      {"Authorization": {swapCase(token)}},
		"empty":           {"Authorization": {""}},
		"lowercase label": {"Authorization": {"bearer " + token}},
	} {
		for _, path := range paths {
			q := url.Values{}
			if name == "token in query" {
				q.Set("access_token", token)
			}
			status, body := p.do(http.MethodGet, path, "", q, "", header)
			if status != http.StatusOK {
				t.Errorf("%s with %s: HTTP %d, want 200", path, name, status)
			}
			checkError(t, path+" with "+name, body, 10004, "INVALID OR EXPIRED TOKEN")
		}
	}
	if !p.valid(token) {
		t.Fatal("the good token stopped working")
	}
	if p.Logouts("1001") != 0 {
		t.Fatal("a rejected logout was counted")
	}
}

// swapCase swaps the case of every ASCII letter in s.
func swapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

func TestSessionEndpoints(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001", Name: "Alice", ID: 42})
	token := p.login(e)

	body := p.get("/api/v1.0/extension/getpersonalglobal", token, nil)
	checkSuccess(t, "getpersonalglobal", body)
	checkShape(t, "getpersonalglobal", body, "errcode", "errmsg", "enable_nat_fqdn", "fqdn_domain", "cloud_domain",
		"turn_port", "record_feature_code", "enb_internal_client")
	if body["enb_internal_client"] != 1.0 {
		t.Errorf("enb_internal_client %v, want 1", body["enb_internal_client"])
	}

	body = p.get("/api/v1.0/licenseservice/get", token, nil)
	checkSuccess(t, "licenseservice/get", body)
	checkShape(t, "licenseservice/get", body, "errcode", "errmsg", "subscribe_plan_list")
	var plans struct {
		List []struct {
			Services []struct {
				Name   *string `json:"service_name"`
				Status *int    `json:"status"`
			} `json:"service_list"`
		} `json:"subscribe_plan_list"`
	}
	remarshal(t, body, &plans)
	names := map[string]bool{}
	for _, pl := range plans.List {
		for _, s := range pl.Services {
			if s.Name == nil || s.Status == nil {
				t.Fatalf("service without name or status: %v", body)
			}
			names[*s.Name] = true
		}
	}
	if !names["fqdn"] || !names["video"] {
		t.Errorf("services %v, want fqdn and video", names)
	}

	body = p.get("/api/v1.0/extension/getpersonal", token, nil)
	checkSuccess(t, "getpersonal", body)
	checkShape(t, "getpersonal", body, "errcode", "errmsg", "extension")
	ext, _ := body["extension"].(map[string]any)
	checkShape(t, "getpersonal extension", ext, "id", "number", "caller_id_name", "enb_web_client",
		"enb_desktop_client", "enb_ctl_record", "enb_web_client_call_waiting")
	for k, v := range map[string]any{"id": 42.0, "number": "1001", "caller_id_name": "Alice", "enb_web_client": 1.0, "enb_desktop_client": 1.0} {
		if ext[k] != v {
			t.Errorf("extension.%s = %v, want %v", k, ext[k], v)
		}
	}

	body = p.get("/api/v1.0/extension/getregisterinfo", token, nil)
	checkSuccess(t, "getregisterinfo", body)
	checkShape(t, "getregisterinfo", body, "errcode", "errmsg", "realm", "registername", "registerpassword")
	if body["registername"] != "1001" || body["registerpassword"] == "" {
		t.Errorf("getregisterinfo %v", body)
	}

	other := p.login(e)
	body = p.get("/api/v1.0/logout", token, nil)
	checkError(t, "logout", body, 0, "SUCCESS")
	if p.Logouts("1001") != 1 {
		t.Errorf("Logouts = %d, want 1", p.Logouts("1001"))
	}
	if p.valid(token) {
		t.Error("token valid after logout")
	}
	if !p.valid(other) {
		t.Error("logout ended another session of the same extension")
	}
	checkError(t, "second logout", p.get("/api/v1.0/logout", token, nil), 10004, "INVALID OR EXPIRED TOKEN")
}

func remarshal(t *testing.T, from, to any) {
	t.Helper()
	b, err := json.Marshal(from)
	if err == nil {
		err = json.Unmarshal(b, to)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	for _, path := range []string{"/api/v1.0/nope", "/api/v1.0/extension/getpersonal/", "/", "/api/v1.0/systemlog/webclientlog"} {
		status, body := p.do(http.MethodGet, path, token, nil, "", nil)
		if status != http.StatusNotFound {
			t.Errorf("%s: HTTP %d, want 404", path, status)
		}
		checkError(t, path, body, 10001, "INTERFACE NOT EXIST")
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1.0/extension/getpersonal"},
		{http.MethodPut, "/api/v1.0/login"},
		{http.MethodDelete, "/api/v1.0/logout"},
		{http.MethodPost, "/api/v1.0/cdr/searchpersonal"},
	} {
		status, body := p.do(tc.method, tc.path, token, nil, "{}", http.Header{"Content-Type": {"application/json"}})
		if status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: HTTP %d, want 405", tc.method, tc.path, status)
		}
		checkShape(t, tc.method+" "+tc.path, body, "errcode", "errmsg")
	}
}

func TestFailEndpoint(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	token := p.login(e)
	const path = "/api/v1.0/cdr/searchpersonal"

	p.FailEndpoint(path, 50001, "SYSTEM BUSY")
	checkError(t, "failed searchpersonal", p.get(path, token, nil), 50001, "SYSTEM BUSY")
	// The fault applies whatever the token: it stands for a PBX-side failure.
	checkError(t, "failed searchpersonal without token", p.get(path, "", nil), 50001, "SYSTEM BUSY")
	checkSuccess(t, "other endpoint", p.get("/api/v1.0/extension/getpersonal", token, nil))

	p.FailEndpoint("/api/v1.0/login", 70136, "SDK PLAN DISABLED")
	checkError(t, "failed login", p.loginAs("1001", e.Secret), 70136, "SDK PLAN DISABLED")
	if p.Logins("1001") != 1 {
		t.Errorf("a failed login was counted")
	}

	p.FailEndpoint(path, 0, "")
	checkSuccess(t, "cleared searchpersonal", p.get(path, token, nil))
}

func TestSlowEndpoint(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	const path = "/api/v1.0/extension/getpersonal"
	const delay = 300 * time.Millisecond

	p.SlowEndpoint(path, delay)
	began := time.Now()
	checkSuccess(t, "slow getpersonal", p.get(path, token, nil))
	if took := time.Since(began); took < delay {
		t.Errorf("answer after %v, want at least %v", took, delay)
	}

	// A client that gives up is not held: its timeout fires first.
	p.SlowEndpoint(path, time.Hour)
	impatient := &http.Client{Transport: p.client.Transport, Timeout: 100 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, p.URL()+path, nil)
	req.Header.Set("Authorization", token)
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("request succeeded despite a one-hour delay: %d %v", resp.StatusCode, resp.Header)
	}

	// Cleared: the answer comes within the client's timeout again.
	p.SlowEndpoint(path, 0)
	checkSuccess(t, "cleared getpersonal", p.get(path, token, nil))
}
