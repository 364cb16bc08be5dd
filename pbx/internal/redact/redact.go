package redact

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Redacted replaces a credential in text.
const Redacted = "REDACTED"

// credentialName matches a name that says it is a credential: one that
// contains any of the words of credentialWords (isCredentialName).
const credentialName = `[\w.\-]*(?:password|passwd|pwd|secret|token|key|sign|auth|ha1)[\w.\-]*`

var (
	// A credential in a query string, a form or a log line's key=value:
	// access_token=..., reg_password=..., and every other name a
	// credential goes by.
	credentialParam = regexp.MustCompile(`(?i)\b(` + credentialName + `)=[^&\s"'<>:;,)]*`)
	// A credential in a JSON document: "reg_password":"..." or
	// "pin_key":1234 (a SIP password can be a number).
	credentialJSON = regexp.MustCompile(`(?i)"(` + credentialName + `)"\s*:\s*(?:"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+\-]*)`)
	// The same inside a JSON string, as a notification frame carries its
	// msg: \"reg_password\":\"...\". A unit of the value is a plain
	// character, an escaped escape of the inner document (\\\" \\\\ \\n) or
	// an escape of the outer string (\u003c); \" ends it.
	credentialJSONEscaped = regexp.MustCompile(`(?i)\\"(` + credentialName + `)\\"\s*:\s*(?:\\"(?:[^"\\]|\\\\\\"|\\\\\\\\|\\\\[^"\\]|\\[^"\\])*\\"|-?[0-9][0-9.eE+\-]*)`)
	// A password in a URL's user info: scheme://user:password@host. The
	// password may hold a '/' (a base64 token does): it runs to the '@'.
	urlPassword = regexp.MustCompile(`(://[^/\s:@]*):[^@\s]*@`)
)

// Text returns s with the credentials it may carry replaced by REDACTED:
// the value of every field whose name contains password, passwd, pwd,
// secret, token, key, sign, auth or ha1 (in any case; access_token,
// signature and reg_password among them), in query strings, key=value text
// and JSON ("name":"value" and "name":number), and passwords in URLs' user
// info. Use it on any URL or error text before logging it; the socket URL
// carries the access token.
func Text(s string) string {
	s = credentialParam.ReplaceAllString(s, "$1="+Redacted)
	s = credentialJSON.ReplaceAllString(s, `"$1":"`+Redacted+`"`)
	s = credentialJSONEscaped.ReplaceAllString(s, `\"$1\":\"`+Redacted+`\"`)
	return urlPassword.ReplaceAllString(s, "$1:"+Redacted+"@")
}

// Redactor removes a client's own credentials (its secret and every token it
// was issued) from text, on top of Text. A credential is removed by value
// whatever its length: a PBX that echoes a short password in an error
// message must not put it into a log line.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string // every form of every credential, longest first
}

// Add makes r remove secret, in every form it takes in the text around it.
func (r *Redactor) Add(secret string) {
	if secret == "" {
		return
	}
	// The forms a credential takes in the text around it: as is, in a URL
	// (the token travels in the socket URL's query string) and inside a
	// JSON string (a frame or an answer quoting it).
	quoted, _ := json.Marshal(secret)
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret), string(quoted[1 : len(quoted)-1])}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range forms {
		if f != "" && !slices.Contains(r.secrets, f) {
			r.secrets = append(r.secrets, f)
		}
	}
	// Longest first, so that a credential that contains another is
	// replaced whole rather than around the shorter one.
	slices.SortStableFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
}

// Text returns s with the credentials Text removes and every secret added
// to r replaced by Redacted.
func (r *Redactor) Text(s string) string {
	s = Text(s)
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, Redacted)
	}
	return s
}

// Err returns err unchanged if its text carries no credential, and
// otherwise an error with the redacted text. The replacement drops the
// original chain (which would still hold the credential) but keeps what
// callers branch on: context cancellation and timeouts.
func (r *Redactor) Err(err error) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	clean := r.Text(text)
	if clean == text {
		return err
	}
	re := &redactedError{text: clean}
	switch {
	case errors.Is(err, context.Canceled):
		re.kind = context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		re.kind = context.DeadlineExceeded
	}
	var ne net.Error
	re.timeout = errors.As(err, &ne) && ne.Timeout()
	return re
}

// redactedError is an error whose text had a credential removed.
type redactedError struct {
	text    string
	kind    error // context.Canceled, context.DeadlineExceeded or nil
	timeout bool
}

func (e *redactedError) Error() string        { return e.text }
func (e *redactedError) Is(target error) bool { return e.kind != nil && target == e.kind }

// Timeout and Temporary make a redacted network error still a net.Error.
func (e *redactedError) Timeout() bool   { return e.timeout || e.kind == context.DeadlineExceeded }
func (e *redactedError) Temporary() bool { return false }

// maxLoggedPrefix is how much of a dropped frame a log line may show.
const maxLoggedPrefix = 32

// FramePrefix is a short, printable, redacted prefix of a dropped frame for a
// log line: enough to recognise the garbage, too little to carry a payload.
func (r *Redactor) FramePrefix(data []byte) string {
	// Redact a generous slice, then cut: a credential is replaced whole
	// before the cut can leave half of it visible.
	cut := data
	if len(cut) > 1024 {
		cut = cut[:1024]
	}
	s := r.Text(strings.ToValidUTF8(string(cut), "?"))
	var b strings.Builder
	for i, n := 0, 0; i < len(s) && n < maxLoggedPrefix; n++ {
		c, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if !unicode.IsPrint(c) {
			c = '?'
		}
		b.WriteRune(c)
	}
	return b.String()
}
