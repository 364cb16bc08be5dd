package openapi

import (
	"context"
	"net/http"
	"net/url"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/httpapi"
)

// do makes one OpenAPI request and returns the answer of a success (errcode
// 0). token, if set, travels as the access_token query parameter (the
// OpenAPI reads it nowhere else); body, if set, as JSON. A non-zero errcode,
// or HTTP 401/403, is an *Error wrapping kind; anything else that
// goes wrong a *pbx.TransportError wrapping pbx.ErrPBXNetwork. Every error's text
// is redacted.
func (o *Client) do(ctx context.Context, method, ep, token string, q url.Values, body any, kind error) (data []byte, err error) {
	path := openAPIPrefix + ep
	transportErr := func(cause error) error {
		return &pbx.TransportError{Endpoint: path, SDK: pbx.ErrPBXNetwork, Err: o.red.Err(cause)}
	}
	v := url.Values{}
	for k, vs := range q {
		v[k] = vs
	}
	if token != "" {
		v.Set("access_token", token)
	}
	e := httpapi.Engine{HTTP: o.http, Origin: o.origin, Timeout: o.cfg.RequestTimeout, Limiter: o.cfg.Limiter,
		OnRequest: o.cfg.Hooks.Request, Log: o.log, LogMsg: "pbx openapi request", QuotedCode: true}
	r := httpapi.Request{Method: method, Path: path, Query: v, Body: body, Endpoint: ep,
		Header: http.Header{"User-Agent": {o.cfg.UserAgent}}}
	refused := func(f *httpapi.Refusal) error {
		return &Error{Endpoint: path, HTTPStatus: f.Status, ErrCode: f.Code, ErrMsg: o.red.Text(f.Msg), Kind: kind}
	}
	data, _, err = e.Exchange(ctx, r, transportErr, refused)
	if err != nil {
		return nil, err
	}
	return data, nil
}
