package pbxtest

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// result is the errcode/errmsg pair every API answer carries.
type result struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// The PBX's answers to failed requests.
var (
	success         = result{0, "SUCCESS"}
	errNoInterface  = result{10001, "INTERFACE NOT EXIST"}
	errInvalidToken = result{10004, "INVALID OR EXPIRED TOKEN"}
	errBadLogin     = result{10009, "INVALID USERNAME OR PASSWORD"}
	errParameter    = result{40002, "PARAMETER ERROR"}
	errSDKPlan      = result{70136, "SDK PLAN DISABLED"}
)

type route struct {
	method string
	serve  http.HandlerFunc
}

// apiRoutes maps the API paths, as the SDK calls them, to their handlers.
func (s *Server) apiRoutes() map[string]route {
	routes := map[string]route{
		"/api/v1.0/pbx/getproduct":              {http.MethodGet, answer(s.getProduct)},
		"/api/v1.0/login":                       {http.MethodPost, answer(s.login)},
		"/api/v1.0/extension/getpersonalglobal": {http.MethodGet, s.authed(s.getPersonalGlobal)},
		"/api/v1.0/licenseservice/get":          {http.MethodGet, s.authed(getLicense)},
		"/api/v1.0/extension/getpersonal":       {http.MethodGet, s.authed(s.getPersonal)},
		"/api/v1.0/extension/getregisterinfo":   {http.MethodGet, s.authed(getRegisterInfo)},
		"/api/v1.0/cdr/searchpersonal":          {http.MethodGet, s.authed(s.searchPersonal)},
		"/api/v1.0/logout":                      {http.MethodGet, s.authed(s.logout)},
		"/api/v1.0/subscribe":                   {http.MethodGet, s.subscribe},

		// The OpenAPI (openapi.go).
		"/openapi/v1.0/get_token":      {http.MethodPost, s.openAPIEndpoint(false, s.getToken, "username", "password")},
		"/openapi/v1.0/refresh_token":  {http.MethodPost, s.openAPIEndpoint(false, s.refreshToken, "refresh_token")},
		"/openapi/v1.0/del_token":      {http.MethodGet, s.openAPIEndpoint(true, s.delToken)},
		"/openapi/v1.0/sign/create":    {http.MethodPost, s.openAPIEndpoint(true, s.signCreate, "username", "sign_type", "expire_time")},
		"/openapi/v1.0/extension/list": {http.MethodGet, s.openAPIEndpoint(true, s.extensionList)},
	}
	// The event socket and call control (callctl.go).
	for path, rt := range s.callRoutes() {
		routes[path] = rt
	}
	return routes
}

// serveHTTP counts the request, then applies routing, method and the
// injected faults before the endpoint's own handler.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	s.mu.Lock()
	s.requests[path]++
	f := s.faults[path]
	s.mu.Unlock()

	rt, ok := s.routes[path]
	if !ok {
		writeJSON(w, http.StatusNotFound, errNoInterface)
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeJSON(w, http.StatusMethodNotAllowed, errNoInterface)
		return
	}
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			// Abort rather than return: returning would send an empty
			// HTTP 200, which a client closing its TLS connection can
			// still read and take for an answer.
			panic(http.ErrAbortHandler)
		case <-s.done:
			panic(http.ErrAbortHandler)
		}
	}
	if f.errcode != 0 {
		writeJSON(w, http.StatusOK, result{f.errcode, f.errmsg})
		return
	}
	rt.serve(w, r)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		// Every body is one of this package's own types.
		panic("pbxtest: encode answer: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// answer adapts an unauthenticated endpoint.
func answer(h func(*http.Request) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, h(r))
	}
}

// authed adapts an endpoint that needs a session. The SDK sends the raw
// access token as the Authorization header, so anything else (a "Bearer"
// prefix, no header, two of them) is an invalid token, answered the PBX way:
// HTTP 200 with errcode 10004, as is every token of an extension whose API
// tokens are rejected (RejectAPITokens). The handler runs under s.mu.
func (s *Server) authed(h func(e *extension, token string, r *http.Request) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var token string
		if v := r.Header.Values("Authorization"); len(v) == 1 {
			token = v[0]
		}
		s.mu.Lock()
		var body any = errInvalidToken
		if e := s.extensionOf(token); e != nil && !s.apiRejected(e.Number) {
			body = h(e, token, r)
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, body)
	}
}

// ok is a successful answer carrying the endpoint's own fields.
func ok(fields map[string]any) map[string]any {
	fields["errcode"], fields["errmsg"] = success.Errcode, success.Errmsg
	return fields
}

// getProduct requires the host parameter to be what the SDK sends, its
// pbxURL's URL.host: the host the request was sent to, in lower case and
// without the default port.
func (s *Server) getProduct(r *http.Request) any {
	if host, valid := singleParam(r, "host"); !valid || host == "" || host != urlHost(r.Host) {
		return errParameter
	}
	s.mu.Lock()
	style, version := s.quirks.numbers, s.version
	s.mu.Unlock()
	return ok(map[string]any{"access_type": 0, "product": map[string]any{
		"base_oem_id":   style.int(int64(s.opts.BaseOEMID)),
		"company_name":  "Yeastar",
		"disp_dev_name": "Yeastar P-Series PBX",
		"oem_id":        style.int(int64(s.opts.BaseOEMID)),
		"platform_name": s.opts.PlatformName,
		"product_name":  "P570",
		"product_type":  "P570",
		"version":       version,
	}})
}

// urlHost is what a browser's URL.host gives for an https URL whose host
// (with port, if any) is hostport: lower case, and no ":443".
func urlHost(hostport string) string {
	return strings.TrimSuffix(strings.ToLower(hostport), ":443")
}

// login accepts exactly the body the SDK sends: a JSON object with the four
// keys username and password (strings), login_source ("webpc" or null) and
// login_jump ("sdk"), and nothing else. A login of an extension that still
// has live sockets knocks the earlier login out, as a real PBX does: the
// sockets receive 10000 {"username":ext} and the earlier tokens are revoked.
func (s *Server) login(r *http.Request) any {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errParameter
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxFrameSize))
	if err != nil {
		return errParameter
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil || len(body) != 4 {
		return errParameter
	}
	username, ok1 := jsonString(body["username"])
	password, ok2 := jsonString(body["password"])
	jump, ok3 := jsonString(body["login_jump"])
	source, isString := jsonString(body["login_source"])
	sourceOK := isString && source == "webpc" || string(body["login_source"]) == "null"
	if !ok1 || !ok2 || !ok3 || jump != "sdk" || !sourceOK {
		return errParameter
	}

	s.mu.Lock()
	e := s.exts[username]
	switch {
	case e == nil || !e.accepts(password):
		refused := errBadLogin
		if s.quirks.echoPassword {
			refused.Errmsg += ": " + password
		}
		s.mu.Unlock()
		return refused
	case s.sdkDisabled:
		s.mu.Unlock()
		return errSDKPlan
	}
	a := s.activityOf(username)
	a.logins++
	earlier := s.socketsOf(username, nil)
	var knocked []*socket
	if len(earlier) > 0 {
		a.knockOuts++
		s.revokeTokens(username)
		knocked = s.subscribers(username, typeLogin)
	}
	token := s.issueToken(username, isString && source == "webpc")
	s.mu.Unlock()
	s.log.Debug("pbxtest: login", "ext", username, "knocked_out_sockets", len(earlier))
	// Sent after the lock, as every frame is; the answer waits for it, so
	// that the knock-out has reached the old login before the new one
	// starts.
	deliver(knocked, notification(typeLogin, map[string]string{"username": username}))
	return ok(map[string]any{"access_token": token})
}

func jsonString(raw json.RawMessage) (string, bool) {
	var v string
	if raw == nil || json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}

// singleParam returns a query parameter that occurs at most once; a repeated
// parameter is a malformed request.
func singleParam(r *http.Request, name string) (string, bool) {
	v := r.URL.Query()[name]
	switch len(v) {
	case 0:
		return "", true
	case 1:
		return v[0], true
	}
	return "", false
}

func (s *Server) getPersonalGlobal(e *extension, _ string, _ *http.Request) any {
	n := s.quirks.numbers
	return ok(map[string]any{"enable_nat_fqdn": n.int(0), "fqdn_domain": "", "cloud_domain": "", "turn_port": n.int(3478),
		"record_feature_code": "*1", "enb_internal_client": n.int(int64(e.EnbInternalClient))})
}

func getLicense(*extension, string, *http.Request) any {
	return ok(map[string]any{"subscribe_plan_list": []any{map[string]any{"service_list": []any{
		map[string]any{"service_name": "fqdn", "status": 0},
		map[string]any{"service_name": "video", "status": 1},
	}}}})
}

func (s *Server) getPersonal(e *extension, _ string, _ *http.Request) any {
	return ok(map[string]any{"extension": s.quirks.numbers.restyle(map[string]any{
		"id":                          e.ID,
		"number":                      e.Number,
		"caller_id_name":              e.Name,
		"enb_web_client":              e.EnbWebClient,
		"enb_desktop_client":          e.EnbDesktopClient,
		"enb_ctl_record":              1,
		"enb_web_client_call_waiting": 1,
	})})
}

func getRegisterInfo(e *extension, _ string, _ *http.Request) any {
	return ok(map[string]any{"realm": "Yeastar", "registername": e.Number, "registerpassword": e.registerPassword})
}

// logout ends the session of the token it is called with. The socket opened
// with that token stays open: closing it is the client's job, and a client
// that forgets shows up in LiveSockets.
func (s *Server) logout(e *extension, token string, _ *http.Request) any {
	delete(s.tokens, token)
	s.activityOf(e.Number).logouts++
	s.log.Debug("pbxtest: logout", "ext", e.Number)
	return success
}
