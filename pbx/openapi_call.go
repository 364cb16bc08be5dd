package pbx

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
	v := url.Values{}
	for k, vs := range q {
		v[k] = vs
	}
	if token != "" {
		v.Set("access_token", token)
	}
	e := engine{http: o.http, origin: o.origin, timeout: o.cfg.RequestTimeout, limiter: o.cfg.Limiter,
		onRequest: o.cfg.Hooks.Request, log: o.log, logMsg: "pbx openapi request", quotedCode: true}
	r := apiRequest{method: method, path: path, query: v, body: body, endpoint: ep,
		header: http.Header{"User-Agent": {o.cfg.UserAgent}}}
	refused := func(f *apiRefusal) error {
		return &OpenAPIError{Endpoint: path, HTTPStatus: f.status, ErrCode: f.code, ErrMsg: o.red.redact(f.msg), Kind: kind}
	}
	data, _, err = e.exchange(ctx, r, transportErr, refused)
	if err != nil {
		return nil, err
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
