package pbx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// do makes one OpenAPI request and returns the answer of a success (errcode
// 0). token, if set, travels as the access_token query parameter (the
// OpenAPI reads it nowhere else); body, if set, as JSON. A non-zero errcode,
// or HTTP 401/403, is an *OpenAPIError wrapping kind; anything else that
// goes wrong a *TransportError wrapping ErrPBXNetwork. Every error's text
// is redacted.
func (o *OpenAPI) do(ctx context.Context, method, ep, token string, q url.Values, body any, kind error) (data []byte, err error) {
	path := openAPIPrefix + ep
	transportErr := func(cause error) error {
		return &TransportError{Endpoint: path, SDK: ErrPBXNetwork, Err: o.red.redactErr(cause)}
	}
	if o.cfg.Limiter != nil {
		release, err := o.cfg.Limiter.Acquire(ctx)
		if err != nil {
			return nil, transportErr(fmt.Errorf("waiting for the request limiter: %w", err))
		}
		defer release()
	}
	start := time.Now()
	defer func() {
		d := time.Since(start)
		if o.cfg.Hooks.Request != nil {
			o.cfg.Hooks.Request(ep, d, err)
		}
		o.log.Debug("pbx openapi request", "endpoint", ep, "duration", d, "err", err)
	}()

	ctx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout)
	defer cancel()
	v := url.Values{}
	for k, vs := range q {
		v[k] = vs
	}
	if token != "" {
		v.Set("access_token", token)
	}
	u := url.URL{Scheme: o.origin.Scheme, Host: o.origin.Host, Path: path, RawQuery: v.Encode()}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, transportErr(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, transportErr(err)
	}
	req.Header.Set("User-Agent", o.cfg.UserAgent)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return nil, transportErr(err)
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, transportErr(fmt.Errorf("reading the answer: %w", err))
	}
	if len(data) > maxResponseBytes {
		return nil, transportErr(fmt.Errorf("answer larger than %d bytes", maxResponseBytes))
	}

	var env envelope
	envErr := json.Unmarshal(data, &env)
	code, hasCode := jsonInt(env.ErrCode)
	if !hasCode {
		// A firmware that quotes its numbers: "0" is as good as 0 here,
		// since nothing else would be read as an errcode.
		if n, ok := looseInt(string(bytes.Trim(env.ErrCode, `"`))); ok && len(env.ErrCode) > 0 {
			code, hasCode = n, true
		}
	}
	refused := func(msg string) error {
		return &OpenAPIError{Endpoint: path, HTTPStatus: resp.StatusCode, ErrCode: code, ErrMsg: o.red.redact(msg), Kind: kind}
	}
	msg := errMsgText(env.ErrMsg)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		// A refusal, or the PBX's own error answer, is the PBX speaking;
		// any other status (a proxy's 502, a redirect) is the way to the
		// PBX failing.
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || (envErr == nil && hasCode && code != 0) {
			return nil, refused(msg)
		}
		return nil, transportErr(fmt.Errorf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
	switch {
	case envErr != nil:
		return nil, transportErr(fmt.Errorf("answer is not a JSON object: %w", envErr))
	case !hasCode:
		return nil, transportErr(errors.New("answer has no numeric errcode"))
	case code != 0:
		return nil, refused(msg)
	}
	return data, nil
}

// looseInt reads a whole number the way the SDK's JavaScript would compare
// one loosely: a JSON number (float64 or json.Number) or a string of digits
// (with an optional sign, surrounding spaces allowed).
func looseInt(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || n < math.MinInt32 || n > math.MaxInt32 {
			return 0, false
		}
		return int(n), true
	case json.Number:
		return looseInt(string(n))
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 32)
		if err != nil {
			return 0, false
		}
		return int(i), true
	}
	return 0, false
}
