package pbxtest

import (
	"crypto/rand"
	"encoding/hex"
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

// issueToken records a new access token for ext. s.mu must be held.
func (s *Server) issueToken(ext string) string {
	token := randomHex(16)
	s.tokens[token] = ext
	return token
}

// revokeTokens invalidates every token of ext. s.mu must be held.
func (s *Server) revokeTokens(ext string) {
	for token, owner := range s.tokens {
		if owner == ext {
			delete(s.tokens, token)
		}
	}
}

// extensionOf returns the extension a token belongs to, or nil. s.mu must be
// held.
func (s *Server) extensionOf(token string) *extension {
	if ext, ok := s.tokens[token]; ok {
		return s.exts[ext]
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
