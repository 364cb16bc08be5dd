package pbxtest

import (
	"crypto/md5"
	"encoding/hex"
)

// Hostile knobs. A real PBX is not this simulator: firmware versions differ
// in page sizes, field types, totals, error texts and what their bodies
// carry. Each knob below makes the simulator one such PBX, so that a client
// can be tested against it. All are off in a new Server.

// quirks holds the hostile knobs' settings. Guarded by Server.mu.
type quirks struct {
	pageCap           int
	offsetByRequested bool
	totalNumber       func(real int) int
	repeatLastPage    bool
	samePage          bool
	numbers           NumberStyle
	echoPassword      bool
	endlessHandshake  bool
}

// SetPageCap makes cdr/searchpersonal serve at most max records a page,
// whatever page_size asks for (max 0 removes the cap): the reference sets no
// maximum, and a client that takes a short page for the last one loses the
// records beyond it. With offsetByRequested false, page n starts at record
// (n-1)*max, so paging by the capped size reaches every record; with it
// true, page n starts at (n-1)*page_size, so a client that keeps asking for
// more than max skips records and must learn to ask for what it is served.
// Both are plausible firmware behaviours. total_number stays honest unless
// SetTotalNumber says otherwise.
func (s *Server) SetPageCap(max int, offsetByRequested bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quirks.pageCap, s.quirks.offsetByRequested = max, offsetByRequested
}

// SetTotalNumber makes cdr/searchpersonal report f(real) as total_number,
// where real is the number of matching records; nil restores the honest
// count. It lets tests report a huge, negative or fixed total, which a
// client must not trust to end a scan. f is called with the server's lock
// held, so it must not call the Server.
func (s *Server) SetTotalNumber(f func(real int) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quirks.totalNumber = f
}

// SetRepeatLastPage makes a cdr/searchpersonal page past the end of the
// matching records answer the last non-empty page again, instead of an
// empty list: a client that pages until an empty page never ends.
func (s *Server) SetRepeatLastPage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quirks.repeatLastPage = on
}

// SetSamePage makes every cdr/searchpersonal page number answer page 1's
// records: with enough records, a full page forever, so that a client that
// pages until a short page never ends.
func (s *Server) SetSamePage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quirks.samePage = on
}

// SetEchoPassword makes a refused login (bad password or unknown user)
// answer errmsg "INVALID USERNAME OR PASSWORD: <the password it was sent>",
// as a PBX that echoes the credential does: a client that logs or publishes
// the PBX's error text leaks the secret.
func (s *Server) SetEchoPassword(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quirks.echoPassword = on
}

// SetEndlessHandshake makes the PBX answer every request on the subscribe
// path by taking the connection over and writing
// "HTTP/1.1 101 Switching Protocols" and then one header that never ends,
// until the client goes away or the server closes: a client that does not
// bound the handshake's headers or time grows without limit or hangs.
func (s *Server) SetEndlessHandshake(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quirks.endlessHandshake = on
}

// RejectAPITokens makes, while on, every authenticated API call made with one
// of ext's tokens (those issued while it is on included) answer HTTP 200
// errcode 10004 "INVALID OR EXPIRED TOKEN", logout too, while ext's
// subscribe sockets stay open and new upgrades with those tokens are still
// accepted: a PBX whose API and socket disagree about a session. Logins
// still succeed; turn it off to let a new session work.
func (s *Server) RejectAPITokens(ext string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.activityOf(ext).rejectAPI = on
}

// apiRejected reports whether RejectAPITokens is on for ext. s.mu must be
// held.
func (s *Server) apiRejected(ext string) bool {
	a := s.activity[ext]
	return a != nil && a.rejectAPI
}

// Flood sends frame n times, as fast as the sockets take them, to every live
// socket of ext, subscribed or not, and returns when all have been written
// (or a socket was dropped for not taking them).
func (s *Server) Flood(ext string, n int, frame string) {
	s.mu.Lock()
	socks := s.socketsOf(ext, nil)
	s.mu.Unlock()
	b := []byte(frame)
	for _, c := range socks {
		for i := 0; i < n && c.send(b); i++ {
		}
	}
}

// NotifySIPRegistration sends a 20066 ("SIP registration data changed")
// notification to ext's sockets subscribed to 20066, with the SIP
// registration data a PBX puts in it: credentials at several depths (the
// extension's register password, an HA1 digest, a secret and a token in a
// nested object, a password in a list). It returns the credential values,
// so that a test can assert that none of them reaches NATS or a log. It
// sends nothing and returns nil for an unknown extension.
func (s *Server) NotifySIPRegistration(ext string) []string {
	s.mu.Lock()
	e := s.exts[ext]
	if e == nil {
		s.mu.Unlock()
		return nil
	}
	password := e.registerPassword
	socks := s.subscribers(ext, typeSIPRegistration)
	s.mu.Unlock()

	const realm = "Yeastar"
	digest := md5.Sum([]byte(ext + ":" + realm + ":" + password))
	ha1 := hex.EncodeToString(digest[:])
	secret, token, outbound := randomHex(12), randomHex(20), randomHex(10)
	deliver(socks, notification(typeSIPRegistration, map[string]any{
		"realm":        realm,
		"reg_name":     ext,
		"reg_password": password,
		"transport":    "udp",
		"auth":         map[string]any{"ha1": ha1, "user": ext},
		"sip": map[string]any{
			"secret":   secret,
			"Token":    token,
			"port":     5060,
			"outbound": []any{map[string]any{"proxy": "sip.example.test", "passwd": outbound}},
		},
	}))
	return []string{password, ha1, secret, token, outbound}
}
