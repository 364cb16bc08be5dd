package pbxtest

import "time"

// The OpenAPI's knobs and counters: credentials, token lifetimes and
// revocations, refusals, and what the bridge asked of it.

// OpenAPICredentials returns the AccessID and AccessKey that get_token
// accepts: generated when the server first needs them, unless set with
// SetOpenAPICredentials.
func (s *Server) OpenAPICredentials() (id, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	oa := s.openAPI()
	return oa.id, oa.key
}

// SetOpenAPICredentials replaces the AccessID and AccessKey, as an
// administrator regenerating them in the web portal does: every access and
// refresh token issued so far becomes invalid.
func (s *Server) SetOpenAPICredentials(id, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	oa := s.openAPI()
	oa.id, oa.key = id, key
	oa.revokeAll()
}

// SetTokenLifetime sets the lifetime of the access and refresh tokens issued
// from now on (a zero value keeps the current one). Tokens expire by the wall
// clock. The expire times in the answers are whole seconds, rounded up.
func (s *Server) SetTokenLifetime(access, refresh time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	oa := s.openAPI()
	if access > 0 {
		oa.accessLife = access
	}
	if refresh > 0 {
		oa.refreshLife = refresh
	}
}

// RevokeOpenAPITokens invalidates every access and refresh token, as a PBX
// restart might: the next call with a held token fails with errcode 10004.
func (s *Server) RevokeOpenAPITokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openAPI().revokeAll()
}

// SetRefreshRevokesOld chooses what refresh_token does to the access token
// of the pair it replaces: off (the default), it stays valid until it
// expires, and a client must revoke it to keep its count of live tokens
// down; on, it stops working at once. The reference says neither.
func (s *Server) SetRefreshRevokesOld(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openAPI().refreshRevokesOld = on
}

// SetSignInvalidatesOld chooses whether sign/create makes the extension's
// previously minted signatures stop working (on) or leaves them valid (off,
// the default). The reference says neither. Extension.Secret, the secret
// given to AddExtension, stays valid either way.
func (s *Server) SetSignInvalidatesOld(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openAPI().signInvalidatesOld = on
}

// FailSign makes sign/create answer errcode 70052 (with a valid token and
// body) while on is true.
func (s *Server) FailSign(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openAPI().failSign = on
}

// SetListAllowed chooses whether the credentials may call extension/list
// (the default) or get errcode 10011, as Linkus SDK credentials may on a
// real PBX.
func (s *Server) SetListAllowed(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openAPI().listDenied = !on
}

// RevokeSignatures makes every signature minted for ext stop working, as
// an administrator resetting the extension's SDK access would; a login
// with one is then refused. Extension.Secret stays valid.
func (s *Server) RevokeSignatures(ext string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.exts[ext]; e != nil {
		e.signs = nil
	}
}

// LiveOpenAPITokens returns how many access tokens are valid now.
func (s *Server) LiveOpenAPITokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	oa := s.openAPI()
	oa.expire(time.Now())
	return len(oa.access)
}

// MaxLiveOpenAPITokens returns the most access tokens that were ever valid
// at once: a bridge should never have more than two.
func (s *Server) MaxLiveOpenAPITokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openAPI().maxLive
}

// SignsMinted returns how many signatures sign/create minted for ext. The
// count survives DeleteExtension.
func (s *Server) SignsMinted(ext string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openAPI().minted[ext]
}

// GetTokenCalls returns how many get_token requests reached the endpoint
// with a well-formed body, whatever the answer.
func (s *Server) GetTokenCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openAPI().getTokenCalls
}

// TokenCapRefusals returns how many get_token and refresh_token requests
// were refused because MaxOpenAPITokens tokens were alive.
func (s *Server) TokenCapRefusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openAPI().capRefusals
}

// RefreshCalls returns how many refresh_token requests reached the endpoint
// with a well-formed body, whatever the answer.
func (s *Server) RefreshCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openAPI().refreshCalls
}
