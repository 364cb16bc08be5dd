package pbxtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"slices"
)

// Extension is a PBX user that can log in through the SDK.
type Extension struct {
	Number            string // extension number and login username, e.g. "1001"; required
	Secret            string // login signature (the SDK's secret); generated if empty
	Name              string // caller_id_name; default "Ext <Number>"
	ID                int    // extension id; default: the next free one
	EnbWebClient      int    // enb_web_client; 0 means the default, 1 (use SetClientFlags to clear it)
	EnbDesktopClient  int    // enb_desktop_client; 0 means the default, 1
	EnbInternalClient int    // enb_internal_client; 0 means the default, 1
}

// extension is an Extension and what the PBX keeps for it.
type extension struct {
	Extension
	registerPassword string
	cdrs             []record
	signs            []string // minted by sign/create, accepted by login (openapi.go)
}

// AddExtension creates the extension, or replaces the settings of an
// existing one with the same number (keeping its CDRs, tokens and sockets),
// and returns it with the defaults filled in. It panics if e.Number is
// empty, like httptest does on misuse.
func (s *Server) AddExtension(e Extension) Extension {
	if e.Number == "" {
		panic("pbxtest: AddExtension: empty Number")
	}
	if e.Secret == "" {
		e.Secret = randomHex(32)
	}
	if e.Name == "" {
		e.Name = "Ext " + e.Number
	}
	for _, flag := range []*int{&e.EnbWebClient, &e.EnbDesktopClient, &e.EnbInternalClient} {
		if *flag == 0 {
			*flag = 1
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.exts[e.Number]
	switch {
	case e.ID == 0 && old != nil:
		e.ID = old.ID
	case e.ID == 0:
		s.nextExtID++
		e.ID = s.nextExtID
	case e.ID > s.nextExtID:
		s.nextExtID = e.ID
	}
	if old != nil {
		old.Extension = e
		return e
	}
	s.exts[e.Number] = &extension{Extension: e, registerPassword: randomHex(16)}
	return e
}

// Extension returns the extension with that number as the PBX has it now
// (flags changed by SetClientFlags included), and false if there is none.
func (s *Server) Extension(number string) (Extension, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.exts[number]; e != nil {
		return e.Extension, true
	}
	return Extension{}, false
}

// tokenInfo is what the PBX knows about an access token: whose it is, and
// whether the login named the WebPC user agent, which decides the topic list
// its sockets must send.
type tokenInfo struct {
	ext   string
	webPC bool
}

// issueToken records a new access token for ext. s.mu must be held.
func (s *Server) issueToken(ext string, webPC bool) string {
	token := randomToken()
	s.tokens[token] = tokenInfo{ext: ext, webPC: webPC}
	s.issued = append(s.issued, token)
	return token
}

// IssuedCredentials returns every credential the PBX holds or ever handed
// out: the extensions' secrets and SIP register passwords, every access
// token of the Linkus API, and, once the OpenAPI was used, its AccessKey,
// every access and refresh token and every signature it minted. A test
// asserts that none of them reaches a log line, an event or a reply.
func (s *Server) IssuedCredentials() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.issued)
	for _, e := range s.exts {
		out = append(out, e.Secret, e.registerPassword)
	}
	if s.oa != nil {
		out = append(out, s.oa.key)
		out = append(out, s.oa.issued...)
	}
	return out
}

// randomToken returns 32 characters of the standard base64 alphabet, with
// "==" padding and at least one '+' and one '/': characters that must be
// escaped in a query string ('+' reads as a space), so that a client that
// puts the token into the socket URL unescaped is refused, as it would be by
// a PBX whose tokens happen to contain them.
func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("pbxtest: crypto/rand failed: " + err.Error())
	}
	t := []byte(base64.StdEncoding.EncodeToString(b[:22])) // 30 characters, then "=="
	i := int(b[22]) % 30
	j := (i + 1 + int(b[23])%29) % 30 // never i
	t[i], t[j] = '+', '/'
	return string(t)
}

// revokeTokens invalidates every token of ext. s.mu must be held.
func (s *Server) revokeTokens(ext string) {
	for token, ti := range s.tokens {
		if ti.ext == ext {
			delete(s.tokens, token)
		}
	}
}

// extensionOf returns the extension a token belongs to, or nil. s.mu must be
// held.
func (s *Server) extensionOf(token string) *extension {
	if ti, ok := s.tokens[token]; ok {
		return s.exts[ti.ext]
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("pbxtest: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}
