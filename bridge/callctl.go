package bridge

import (
	"context"
	"strings"
	"time"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
)

// Call control over request/reply: pbx.<ext>.call.dial, .hangup, .hold,
// .unhold, .transfer and .list, served with requests.allow_call_control
// only. bridge/livecall validates each request in one place and finds the
// extension's channel; the PBX's answer or error is the reply.

// callEndpoints are the call control endpoints (none unless allowed).
func (b *Bridge) callEndpoints() []endpoint {
	if !b.cfg.AllowCallControl || b.control == nil {
		return nil
	}
	var eps []endpoint
	for _, op := range livecall.Ops() {
		eps = append(eps, endpoint{name: strings.ReplaceAll(string(op), ".", "_"), subject: op.Subject(b.cfg.Prefix), schema: op.ReplyType(), handle: b.callHandler(op)})
	}
	return eps
}

// callHandler answers one operation: what needs no PBX (a bad request) at
// once, the PBX calls off the subscription's goroutine.
func (b *Bridge) callHandler(op livecall.Op) handler {
	return func(x *extension, body []byte) (any, func(context.Context) (any, error), error) {
		req, lerr := b.control.Prepare(op, x.number, body)
		if lerr != nil {
			return nil, nil, callError(lerr)
		}
		return nil, func(ctx context.Context) (any, error) {
			reply, lerr := req.Run(ctx)
			if lerr != nil {
				return nil, callError(lerr)
			}
			return reply, nil
		}, nil
	}
}

// callError is a livecall error as the service answers errors.
func callError(e *livecall.Error) *apiError {
	ae := &apiError{code: e.Code, msg: e.Message}
	if e.PBXErrCode != 0 {
		// The reply's pbx_errcode and pbx_errmsg, as for cdr.query.
		ae.pbx = &pbx.APIError{ErrCode: e.PBXErrCode, ErrMsg: e.PBXErrMsg}
	}
	if e.Code == codeUnavailable {
		ae.retryAfter = time.Second
	}
	return ae
}

// callAPI runs each call control request under the fleet's token lock
// (withOpenAPI), so that call control keeps to the fleet's token budget.
type callAPI struct{ b *Bridge }

func (a callAPI) do(ctx context.Context, fn func(context.Context, *openapi.Client) error) error {
	return a.b.withOpenAPI(ctx, fn)
}

func (a callAPI) Dial(ctx context.Context, caller, callee string, autoAnswer bool) (id string, err error) {
	err = a.do(ctx, func(ctx context.Context, api *openapi.Client) error {
		id, err = api.Dial(ctx, caller, callee, autoAnswer)
		return err
	})
	return id, err
}

func (a callAPI) Hangup(ctx context.Context, ch string) error {
	return a.do(ctx, func(ctx context.Context, api *openapi.Client) error { return api.Hangup(ctx, ch) })
}

func (a callAPI) Hold(ctx context.Context, ch string) error {
	return a.do(ctx, func(ctx context.Context, api *openapi.Client) error { return api.Hold(ctx, ch) })
}

func (a callAPI) Unhold(ctx context.Context, ch string) error {
	return a.do(ctx, func(ctx context.Context, api *openapi.Client) error { return api.Unhold(ctx, ch) })
}

func (a callAPI) Transfer(ctx context.Context, req openapi.TransferRequest) error {
	return a.do(ctx, func(ctx context.Context, api *openapi.Client) error { return api.Transfer(ctx, req) })
}

func (a callAPI) QueryCalls(ctx context.Context, q openapi.CallQuery) (calls []openapi.CallState, err error) {
	err = a.do(ctx, func(ctx context.Context, api *openapi.Client) error {
		calls, err = api.QueryCalls(ctx, q)
		return err
	})
	return calls, err
}
