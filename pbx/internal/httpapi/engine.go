package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/loose"
)

// MaxResponseBytes bounds an API answer; a CDR page of 100 records is far
// smaller.
const MaxResponseBytes = 16 << 20

// ErrCodeTokenInvalid is the PBX's errcode for an invalid or expired access
// token ("INVALID OR EXPIRED TOKEN"), in both APIs.
const ErrCodeTokenInvalid = 10004

// Limiter bounds the requests sent to a PBX (pbx.Limiter).
type Limiter interface {
	Acquire(ctx context.Context) (release func(), err error)
}

// Request is one request. Path is the full URL path.
type Request struct {
	Method, Path string
	Query        url.Values
	Body         any         // sent as JSON when not nil
	Header       http.Header // set on the request, besides Accept and Content-Type
	Endpoint     string      // as the hooks and the log name it
}

// Refusal is the PBX refusing a request: HTTP 401/403, or an answer with a
// non-zero errcode. Msg is the errmsg (or the HTTP status text), not yet
// redacted.
type Refusal struct {
	Status int
	Code   int
	Msg    string
}

// Error is for the engine's own use: it is not redacted, and never leaves
// Exchange (refused makes the API's error of it).
func (r *Refusal) Error() string { return fmt.Sprintf("HTTP %d errcode %d", r.Status, r.Code) }

// Engine sends requests to one PBX.
type Engine struct {
	HTTP      *http.Client
	Origin    *url.URL
	Timeout   time.Duration
	Limiter   Limiter                                           // nil for none
	OnRequest func(endpoint string, d time.Duration, err error) // a Hooks.Request, or nil
	Log       *slog.Logger
	LogMsg    string // the debug line of each request
	// QuotedCode also takes an errcode sent as a JSON string ("0"), as
	// some OpenAPI firmwares do.
	QuotedCode bool
}

// Exchange sends r and returns the answer's body and header when the PBX
// accepted it (errcode 0). When the PBX refused it, the error is what
// refused makes of the refusal (and the body is returned too when the
// answer was an HTTP success: an API may read it all the same); when the
// way to the PBX failed (a network error, a proxy's HTTP status, an answer
// that is not the PBX's), what transport makes of the cause. Both make the
// API's own, redacted errors: the hook and the log see only those.
func (e *Engine) Exchange(ctx context.Context, r Request, transport func(error) error, refused func(*Refusal) error) (data []byte, header http.Header, err error) {
	if e.Limiter != nil {
		release, err := e.Limiter.Acquire(ctx)
		if err != nil {
			return nil, nil, transport(fmt.Errorf("waiting for the request limiter: %w", err))
		}
		defer release()
	}
	start := time.Now()
	defer func() {
		d := time.Since(start)
		if e.OnRequest != nil {
			e.OnRequest(r.Endpoint, d, err)
		}
		e.Log.Debug(e.LogMsg, "endpoint", r.Endpoint, "duration", d, "err", err)
	}()
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	resp, err := e.send(ctx, r)
	if err != nil {
		return nil, nil, transport(err)
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, nil, transport(fmt.Errorf("reading the answer: %w", err))
	}
	if len(data) > MaxResponseBytes {
		return nil, nil, transport(fmt.Errorf("answer larger than %d bytes", MaxResponseBytes))
	}
	if err := e.judge(resp.StatusCode, data); err != nil {
		var refusal *Refusal
		if !errors.As(err, &refusal) {
			return nil, resp.Header, transport(err)
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			data = nil
		}
		return data, resp.Header, refused(refusal)
	}
	return data, resp.Header, nil
}

// send builds and sends the request.
func (e *Engine) send(ctx context.Context, r Request) (*http.Response, error) {
	u := url.URL{Scheme: e.Origin.Scheme, Host: e.Origin.Host, Path: r.Path, RawQuery: r.Query.Encode()}
	var rd io.Reader
	if r.Body != nil {
		b, err := json.Marshal(r.Body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.HTTP.Do(req)
}

// judge applies the rule both APIs share to an answer: a refused token, or
// the PBX's own error answer, is the PBX speaking (*Refusal); any other
// HTTP status (a proxy's 502, a redirect), or a body that is not an
// envelope with a numeric errcode, is the way to the PBX failing.
func (e *Engine) judge(status int, data []byte) error {
	var env envelope
	envErr := json.Unmarshal(data, &env)
	code, hasCode := loose.JSONInt(env.ErrCode)
	if !hasCode && e.QuotedCode && len(env.ErrCode) > 0 {
		// A firmware that quotes its numbers: "0" is as good as 0 here,
		// since nothing else would be read as an errcode.
		if n, ok := loose.Int(string(bytes.Trim(env.ErrCode, `"`))); ok {
			code, hasCode = n, true
		}
	}
	msg := errMsgText(env.ErrMsg)
	if status < 200 || status > 299 {
		if msg == "" {
			msg = http.StatusText(status)
		}
		if status == http.StatusUnauthorized || status == http.StatusForbidden || (envErr == nil && hasCode && code != 0) {
			return &Refusal{Status: status, Code: code, Msg: msg}
		}
		return fmt.Errorf("HTTP %d %s", status, http.StatusText(status))
	}
	switch {
	case envErr != nil:
		return fmt.Errorf("answer is not a JSON object: %w", envErr)
	case !hasCode:
		return errors.New("answer has no numeric errcode")
	case code != 0:
		return &Refusal{Status: status, Code: code, Msg: msg}
	}
	return nil
}

// envelope is what every API answer has.
type envelope struct {
	ErrCode json.RawMessage `json:"errcode"`
	ErrMsg  json.RawMessage `json:"errmsg"`
}

// errMsgText reads errmsg, a string normally; anything else is shown as JSON.
func errMsgText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	text := string(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		text = s
	}
	if len(text) > 200 {
		text = strings.ToValidUTF8(text[:200], "") + "..."
	}
	return text
}
