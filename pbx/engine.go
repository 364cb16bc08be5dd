package pbx

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
	"time"
)

// The one request engine of both of the PBX's HTTP APIs (the Linkus SDK's
// /api/v1.0 and the OpenAPI's /openapi/v1.0): the limiter, the timeout, the
// JSON body, the bounded answer, the envelope's errcode, and the one rule of
// what is the PBX refusing and what is the way to the PBX failing. Each API
// maps the outcome to its own error types (Client.do, OpenAPI.do).

// apiRequest is one request. path is the full URL path.
type apiRequest struct {
	method, path string
	query        url.Values
	body         any         // sent as JSON when not nil
	header       http.Header // set on the request, besides Accept and Content-Type
	endpoint     string      // as the hooks and the log name it
}

// apiRefusal is the PBX refusing a request: HTTP 401/403, or an answer
// with a non-zero errcode. msg is the errmsg (or the HTTP status text),
// not yet redacted.
type apiRefusal struct {
	status int
	code   int
	msg    string
}

// Error is for the engine's own use: it is not redacted, and never leaves
// exchange (refused makes the API's error of it).
func (r *apiRefusal) Error() string { return fmt.Sprintf("HTTP %d errcode %d", r.status, r.code) }

// engine sends requests to one PBX.
type engine struct {
	http      *http.Client
	origin    *url.URL
	timeout   time.Duration
	limiter   Limiter
	onRequest func(endpoint string, d time.Duration, err error) // a Hooks.Request, or nil
	log       *slog.Logger
	logMsg    string // the debug line of each request
	// quotedCode also takes an errcode sent as a JSON string ("0"), as
	// some OpenAPI firmwares do.
	quotedCode bool
}

// exchange sends r and returns the answer's body and header when the PBX
// accepted it (errcode 0). When the PBX refused it, the error is what
// refused makes of the refusal (and the body is returned too when the
// answer was an HTTP success: an API may read it all the same); when the
// way to the PBX failed (a network error, a proxy's HTTP status, an answer
// that is not the PBX's), what transport makes of the cause. Both make the
// API's own, redacted errors: the hook and the log see only those.
func (e *engine) exchange(ctx context.Context, r apiRequest, transport func(error) error, refused func(*apiRefusal) error) (data []byte, header http.Header, err error) {
	if e.limiter != nil {
		release, err := e.limiter.Acquire(ctx)
		if err != nil {
			return nil, nil, transport(fmt.Errorf("waiting for the request limiter: %w", err))
		}
		defer release()
	}
	start := time.Now()
	defer func() {
		d := time.Since(start)
		if e.onRequest != nil {
			e.onRequest(r.endpoint, d, err)
		}
		e.log.Debug(e.logMsg, "endpoint", r.endpoint, "duration", d, "err", err)
	}()
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	resp, err := e.send(ctx, r)
	if err != nil {
		return nil, nil, transport(err)
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, nil, transport(fmt.Errorf("reading the answer: %w", err))
	}
	if len(data) > maxResponseBytes {
		return nil, nil, transport(fmt.Errorf("answer larger than %d bytes", maxResponseBytes))
	}
	if err := e.judge(resp.StatusCode, data); err != nil {
		var refusal *apiRefusal
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
func (e *engine) send(ctx context.Context, r apiRequest) (*http.Response, error) {
	u := url.URL{Scheme: e.origin.Scheme, Host: e.origin.Host, Path: r.path, RawQuery: r.query.Encode()}
	var rd io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.http.Do(req)
}

// judge applies the rule both APIs share to an answer: a refused token, or
// the PBX's own error answer, is the PBX speaking (*apiRefusal); any other
// HTTP status (a proxy's 502, a redirect), or a body that is not an
// envelope with a numeric errcode, is the way to the PBX failing.
func (e *engine) judge(status int, data []byte) error {
	var env envelope
	envErr := json.Unmarshal(data, &env)
	code, hasCode := jsonInt(env.ErrCode)
	if !hasCode && e.quotedCode && len(env.ErrCode) > 0 {
		// A firmware that quotes its numbers: "0" is as good as 0 here,
		// since nothing else would be read as an errcode.
		if n, ok := looseInt(string(bytes.Trim(env.ErrCode, `"`))); ok {
			code, hasCode = n, true
		}
	}
	msg := errMsgText(env.ErrMsg)
	if status < 200 || status > 299 {
		if msg == "" {
			msg = http.StatusText(status)
		}
		if status == http.StatusUnauthorized || status == http.StatusForbidden || (envErr == nil && hasCode && code != 0) {
			return &apiRefusal{status: status, code: code, msg: msg}
		}
		return fmt.Errorf("HTTP %d %s", status, http.StatusText(status))
	}
	switch {
	case envErr != nil:
		return fmt.Errorf("answer is not a JSON object: %w", envErr)
	case !hasCode:
		return errors.New("answer has no numeric errcode")
	case code != 0:
		return &apiRefusal{status: status, code: code, msg: msg}
	}
	return nil
}
