package pbxtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The OpenAPI of shared/reference/openapi.md lives on the same origin as the
// Linkus API, under /openapi/v1.0/. It is as strict as the rest of the
// simulator: every request must carry a User-Agent of its own (Go's default
// one means the client forgot to set it), POST bodies are JSON objects with
// exactly the reference's keys, and the access token is read from the
// access_token query parameter only. Tokens and signatures contain '+' and
// '/', so a client that does not escape the query parameter is refused.
//
// The errcodes below for the failures the reference leaves open (an
// expired token, a refused listing, the token cap) are the simulator's own
// choice: a client must not depend on them.

// Defaults of the OpenAPI, as the reference has them.
const (
	DefaultAccessTokenLifetime  = 30 * time.Minute
	DefaultRefreshTokenLifetime = 24 * time.Hour
	// MaxOpenAPITokens is how many valid access tokens the credentials may
	// hold at once; get_token is refused while that many are alive.
	MaxOpenAPITokens = 8
)

// The OpenAPI's answers to failed requests.
var (
	errOANoUserAgent  = result{40002, "PARAMETER ERROR: USER-AGENT REQUIRED"}
	errOATokenLimit   = result{10012, "ACCESS TOKEN LIMIT REACHED"}
	errOANoPermission = result{10011, "NO PERMISSION"}
	errOASignFailed   = result{70052, "SIGN CREATE FAILED"}
	errOANoExtension  = result{40003, "EXTENSION NOT EXIST"}
)

// openAPIState is the PBX's OpenAPI application: one credential pair, the
// tokens issued to it, the knobs and the figures. Guarded by Server.mu.
type openAPIState struct {
	id, key                 string
	accessLife, refreshLife time.Duration
	access                  map[string]*tokenPair // by access token
	refresh                 map[string]*tokenPair // by refresh token

	maxLive                       int
	getTokenCalls, refreshCalls   int
	capRefusals                   int
	minted                        map[string]int // signatures minted, by extension number
	signInvalidatesOld, failSign  bool
	refreshRevokesOld, listDenied bool
	listFaults                    ListFaults
	issued                        []string // every token and signature handed out
}

// tokenPair is what one get_token or refresh_token issued.
type tokenPair struct {
	access, refresh       string
	accessExp, refreshExp time.Time
}

// openAPI returns the OpenAPI state, making it (with fresh credentials) on
// first use. s.mu must be held.
func (s *Server) openAPI() *openAPIState {
	if s.oa == nil {
		s.oa = &openAPIState{
			id:          randomHex(16),
			key:         randomHex(16),
			accessLife:  DefaultAccessTokenLifetime,
			refreshLife: DefaultRefreshTokenLifetime,
			access:      map[string]*tokenPair{},
			refresh:     map[string]*tokenPair{},
			minted:      map[string]int{},
		}
	}
	return s.oa
}

// expire forgets the tokens that have run out.
func (oa *openAPIState) expire(now time.Time) {
	for t, p := range oa.access {
		if !now.Before(p.accessExp) {
			delete(oa.access, t)
		}
	}
	for t, p := range oa.refresh {
		if !now.Before(p.refreshExp) {
			delete(oa.refresh, t)
		}
	}
}

func (oa *openAPIState) revokeAll() {
	clear(oa.access)
	clear(oa.refresh)
}

// revoke invalidates a pair: its access token and its refresh token.
func (oa *openAPIState) revoke(p *tokenPair) {
	delete(oa.access, p.access)
	delete(oa.refresh, p.refresh)
}

// issue records a new pair and returns the answer that carries it.
func (oa *openAPIState) issue(now time.Time) any {
	p := &tokenPair{
		access:     urlSpecialToken(),
		refresh:    urlSpecialToken(),
		accessExp:  now.Add(oa.accessLife),
		refreshExp: now.Add(oa.refreshLife),
	}
	oa.access[p.access], oa.refresh[p.refresh] = p, p
	oa.issued = append(oa.issued, p.access, p.refresh)
	oa.maxLive = max(oa.maxLive, len(oa.access))
	return ok(map[string]any{
		"access_token_expire_time":  seconds(oa.accessLife),
		"access_token":              p.access,
		"refresh_token_expire_time": seconds(oa.refreshLife),
		"refresh_token":             p.refresh,
	})
}

// seconds is a lifetime in whole seconds, rounded up, at least 1.
func seconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// urlSpecialToken returns a random credential with '+' and '/' in it, which
// must be escaped in a query string: a client that pastes it in raw sends
// a space instead of the '+' and is refused.
func urlSpecialToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("pbxtest: crypto/rand failed: " + err.Error())
	}
	t := base64.RawStdEncoding.EncodeToString(b)
	return t[:10] + "+" + t[10:20] + "/" + t[20:]
}

// openAPIRequest is a checked OpenAPI request.
type openAPIRequest struct {
	query url.Values                 // the parameters other than access_token
	body  map[string]json.RawMessage // POST only
	token *tokenPair                 // the authenticated pair; nil for get_token and refresh_token
}

// openAPIEndpoint adapts an OpenAPI endpoint. It refuses (HTTP 403) a
// request without a User-Agent, checks the query (no parameter twice) and
// the POST body (a JSON object with exactly the keys bodyKeys), and for an
// authed endpoint the access_token parameter; a token in an Authorization
// header is refused, since the OpenAPI reads it from the query only. The
// handler runs under s.mu.
func (s *Server) openAPIEndpoint(authed bool, h func(oa *openAPIState, req openAPIRequest) any, bodyKeys ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ua := r.UserAgent(); ua == "" || strings.HasPrefix(ua, "Go-http-client/") {
			writeJSON(w, http.StatusForbidden, errOANoUserAgent)
			return
		}
		var req openAPIRequest
		req.query = r.URL.Query()
		for _, v := range req.query {
			if len(v) > 1 {
				writeJSON(w, http.StatusOK, errParameter)
				return
			}
		}
		if r.Method == http.MethodPost {
			var valid bool
			if req.body, valid = jsonObject(r, bodyKeys); !valid {
				writeJSON(w, http.StatusOK, errParameter)
				return
			}
		}
		token := req.query.Get("access_token")
		req.query.Del("access_token")

		s.mu.Lock()
		oa := s.openAPI()
		oa.expire(time.Now())
		var body any
		if authed {
			req.token = oa.access[token]
		}
		switch {
		case authed && (req.token == nil || r.Header.Get("Authorization") != ""):
			body = errInvalidToken
		case !authed && token != "":
			body = errParameter
		default:
			body = h(oa, req)
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, body)
	}
}

// jsonObject reads a JSON body that is an object with exactly the given
// keys.
func jsonObject(r *http.Request, keys []string) (map[string]json.RawMessage, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, false
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxFrameSize))
	if err != nil {
		return nil, false
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil || len(body) != len(keys) {
		return nil, false
	}
	for _, k := range keys {
		if _, ok := body[k]; !ok {
			return nil, false
		}
	}
	return body, true
}

// getToken answers get_token: a new pair for the right credentials, unless
// MaxOpenAPITokens access tokens are alive.
func (s *Server) getToken(oa *openAPIState, req openAPIRequest) any {
	id, ok1 := jsonString(req.body["username"])
	key, ok2 := jsonString(req.body["password"])
	if !ok1 || !ok2 || len(req.query) > 0 {
		return errParameter
	}
	oa.getTokenCalls++
	switch {
	case id != oa.id || key != oa.key:
		s.log.Debug("pbxtest: get_token refused")
		return errBadLogin
	case len(oa.access) >= MaxOpenAPITokens:
		oa.capRefusals++
		return errOATokenLimit
	}
	return oa.issue(time.Now())
}

// refreshToken answers refresh_token: a new pair for a valid refresh token,
// which is used up. The old access token stays valid unless
// SetRefreshRevokesOld is on.
func (s *Server) refreshToken(oa *openAPIState, req openAPIRequest) any {
	token, valid := jsonString(req.body["refresh_token"])
	if !valid || len(req.query) > 0 {
		return errParameter
	}
	oa.refreshCalls++
	old := oa.refresh[token]
	if old == nil {
		return errInvalidToken
	}
	live := len(oa.access)
	if oa.refreshRevokesOld && oa.access[old.access] != nil {
		live--
	}
	if live >= MaxOpenAPITokens {
		oa.capRefusals++
		return errOATokenLimit
	}
	delete(oa.refresh, token)
	if oa.refreshRevokesOld {
		delete(oa.access, old.access)
	}
	return oa.issue(time.Now())
}

// delToken answers del_token: the pair of the access token it is called
// with stops working.
func (s *Server) delToken(oa *openAPIState, req openAPIRequest) any {
	if len(req.query) > 0 {
		return errParameter
	}
	oa.revoke(req.token)
	return success
}

// signCreate answers sign/create: a new signature that login accepts for the
// extension, for the one body the reference shows (sign_type "sdk",
// expire_time 0).
func (s *Server) signCreate(oa *openAPIState, req openAPIRequest) any {
	ext, ok1 := jsonString(req.body["username"])
	typ, ok2 := jsonString(req.body["sign_type"])
	if !ok1 || !ok2 || typ != "sdk" || string(req.body["expire_time"]) != "0" || len(req.query) > 0 {
		return errParameter
	}
	e := s.exts[ext]
	switch {
	case oa.failSign:
		return errOASignFailed
	case e == nil:
		return errOANoExtension
	}
	sign := urlSpecialToken()
	if oa.signInvalidatesOld {
		e.signs = e.signs[:0]
	}
	e.signs = append(e.signs, sign)
	oa.issued = append(oa.issued, sign)
	oa.minted[ext]++
	s.log.Debug("pbxtest: signature minted", "ext", ext)
	return ok(map[string]any{"data": map[string]any{"sign": sign}})
}

// accepts reports whether login may use password for the extension: its
// configured secret or a signature minted for it and still valid.
func (e *extension) accepts(password string) bool {
	return password == e.Secret || slices.Contains(e.signs, password)
}
