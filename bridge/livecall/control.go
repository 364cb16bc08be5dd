package livecall

import (
	"context"
	"errors"
	"strconv"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// CallAPI is the PBX's call control, as *openapi.Client offers it.
type CallAPI interface {
	Dial(ctx context.Context, caller, callee string, autoAnswer bool) (string, error)
	Hangup(ctx context.Context, channelID string) error
	Hold(ctx context.Context, channelID string) error
	Unhold(ctx context.Context, channelID string) error
	Transfer(ctx context.Context, req openapi.TransferRequest) error
	QueryCalls(ctx context.Context, q openapi.CallQuery) ([]openapi.CallState, error)
}

// ControllerConfig configures a Controller.
type ControllerConfig struct {
	// API makes the PBX requests. Required.
	API CallAPI
	// Served says which extensions may be driven; the others' requests
	// get 404. Required.
	Served func(ext string) bool
	// Tracker, if set, finds an extension's channel in a call without
	// asking the PBX; without it (or when it does not know), call/query
	// does.
	Tracker *Tracker
}

// Controller serves the call control requests of the extensions the bridge
// serves. It is safe for concurrent use.
type Controller struct{ cfg ControllerConfig }

// NewController validates cfg and returns a controller.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.API == nil || cfg.Served == nil {
		return nil, errors.New("livecall: ControllerConfig needs API and Served")
	}
	return &Controller{cfg: cfg}, nil
}

// Op is a call control request: its subject's suffix after
// <prefix>.<ext>.
type Op string

// The call control requests.
const (
	OpDial     Op = "call.dial"
	OpHangup   Op = "call.hangup"
	OpHold     Op = "call.hold"
	OpUnhold   Op = "call.unhold"
	OpTransfer Op = "call.transfer"
	OpList     Op = "call.list"
)

// Ops returns every call control request.
func Ops() []Op { return []Op{OpDial, OpHangup, OpHold, OpUnhold, OpTransfer, OpList} }

// Subject returns the wildcard subject of the request under prefix, e.g.
// "pbx.*.call.dial".
func (op Op) Subject(prefix string) string { return prefix + ".*." + string(op) }

// RequestType returns the schema of the request body; "" for call.list,
// which takes none.
func (op Op) RequestType() string {
	switch op {
	case OpDial:
		return schema.TypeCallDialRequest
	case OpHangup, OpHold, OpUnhold:
		return schema.TypeCallActionRequest
	case OpTransfer:
		return schema.TypeCallTransferRequest
	}
	return ""
}

// ReplyType returns the schema of a successful reply's body.
func (op Op) ReplyType() string {
	switch op {
	case OpDial:
		return schema.TypeCallDialResult
	case OpList:
		return schema.TypeCallListResult
	}
	return schema.TypeCallActionResult
}

// The codes of the request/reply API (README's error table).
const (
	codeBadRequest  = 400
	codeNotFound    = 404
	codeInternal    = 500
	codePBXError    = 502
	codeUnavailable = 503
)

// Error is a failed request's answer: its code and what goes into the
// error body (schema.ErrorReply).
type Error struct {
	Code       int // 400, 404, 502 or 503 (500 for a bug)
	Message    string
	PBXErrCode int // the PBX's errcode, when it answered with one
	PBXErrMsg  string
}

func (e *Error) Error() string { return e.Message }

// Name returns the stable name of the code (schema.ErrorBadRequest, ...).
func (e *Error) Name() string {
	switch e.Code {
	case codeBadRequest:
		return schema.ErrorBadRequest
	case codeNotFound:
		return schema.ErrorNotFound
	case codePBXError:
		return schema.ErrorPBX
	case codeUnavailable:
		return schema.ErrorUnavailable
	}
	return schema.ErrorInternal
}

// Reply returns the error body.
func (e *Error) Reply() schema.ErrorReply {
	return schema.ErrorReply{Code: e.Code, Error: e.Name(), Message: e.Message, PBXErrCode: e.PBXErrCode, PBXErrMsg: e.PBXErrMsg}
}

// pbxError maps an error of the PBX's call control to the API's codes with
// openapi.CallControlStatus: 400 for a request the PBX refused, 404 for a call
// or channel it does not know, 503 when it cannot take requests (or the
// client has no token), 502 when it could not be reached or understood.
func pbxError(err error) *Error {
	code := openapi.CallControlStatus(err)
	var what string
	switch code {
	case codeBadRequest:
		what = "the PBX refused the request"
	case codeNotFound:
		what = "the PBX knows no such call or channel"
	case codeUnavailable:
		what = "the PBX cannot take call control requests now"
	default:
		code, what = codePBXError, "the PBX could not be reached or answered what cannot be read"
	}
	e := &Error{Code: code, Message: what + ": " + err.Error()}
	var oe *openapi.Error
	if errors.As(err, &oe) {
		e.PBXErrCode, e.PBXErrMsg = oe.ErrCode, oe.ErrMsg
	}
	return e
}

// Request is a validated call control request, ready to run.
type Request struct {
	c        *Controller
	op       Op
	ext      string
	dial     schema.CallDialRequest
	action   schema.CallActionRequest
	transfer schema.CallTransferRequest
}

// Prepare checks a request without the PBX: 404 for an extension the
// bridge does not serve, 400 for a body its parser refuses. The request
// returned runs the PBX's part.
func (c *Controller) Prepare(op Op, ext string, body []byte) (*Request, *Error) {
	if !c.cfg.Served(ext) {
		return nil, &Error{Code: codeNotFound, Message: "extension " + strconv.Quote(ext) + " is not served by this bridge"}
	}
	r := &Request{c: c, op: op, ext: ext}
	var err error
	switch op {
	case OpDial:
		r.dial, err = ParseDial(body)
	case OpHangup, OpHold, OpUnhold:
		r.action, err = ParseAction(body)
	case OpTransfer:
		r.transfer, err = ParseTransfer(body)
		r.action = schema.CallActionRequest{CallID: r.transfer.CallID, ChannelID: r.transfer.ChannelID}
	case OpList:
		err = ParseList(body)
	default:
		return nil, &Error{Code: codeNotFound, Message: "no call control request " + strconv.Quote(string(op))}
	}
	if err != nil {
		e := badRequest("%v", err)
		errors.As(err, &e)
		return nil, e
	}
	return r, nil
}

// Handle runs a request to its end: the reply and 200, or the error and
// its code.
func (c *Controller) Handle(ctx context.Context, op Op, ext string, body []byte) (reply any, status int, err *Error) {
	r, err := c.Prepare(op, ext, body)
	if err == nil {
		reply, err = r.Run(ctx)
	}
	if err != nil {
		return nil, err.Code, err
	}
	return reply, 200, nil
}

// Run makes the request's PBX calls and returns the reply body.
func (r *Request) Run(ctx context.Context) (any, *Error) {
	api := r.c.cfg.API
	switch r.op {
	case OpDial:
		id, err := api.Dial(ctx, r.ext, r.dial.Callee, r.dial.AutoAnswer)
		if err != nil {
			return nil, pbxError(err)
		}
		return schema.CallDialResult{CallID: id}, nil
	case OpList:
		calls, err := api.QueryCalls(ctx, openapi.CallQuery{Extension: r.ext})
		if err != nil {
			return nil, pbxError(err)
		}
		return listResult(calls), nil
	}
	cs, own, e := r.ownLeg(ctx)
	if e != nil {
		return nil, e
	}
	acted, err := r.act(ctx, cs, own)
	if err != nil {
		if e, ok := err.(*Error); ok {
			return nil, e
		}
		return nil, pbxError(err)
	}
	return schema.CallActionResult{CallID: cs.CallID, ChannelID: acted}, nil
}

// act makes the request's action on the extension's leg own of cs, and
// returns the channel it acted on.
func (r *Request) act(ctx context.Context, cs openapi.CallState, own openapi.CallMember) (string, error) {
	api := r.c.cfg.API
	switch r.op {
	case OpHangup:
		return own.ChannelID, api.Hangup(ctx, own.ChannelID)
	case OpHold:
		return own.ChannelID, api.Hold(ctx, own.ChannelID)
	case OpUnhold:
		return own.ChannelID, api.Unhold(ctx, own.ChannelID)
	}
	t := r.transfer
	req := openapi.TransferRequest{Type: openapi.TransferType(t.Type), ChannelID: own.ChannelID}
	switch {
	case t.AttendedOperate != "":
		req.AttendedOperate = openapi.AttendedOperation(t.AttendedOperate)
	case t.Type == schema.TransferBlind:
		// The PBX moves the channel it is given: the party the extension
		// talks to, with the extension's dial permission.
		moved, err := counterpart(cs, own, r.ext)
		if err != nil {
			return "", err
		}
		req.ChannelID, req.Number, req.DialPermission = moved.ChannelID, t.Number, r.ext
	default:
		req.Number, req.DialPermission = t.Number, r.ext
	}
	return req.ChannelID, api.Transfer(ctx, req)
}

// listResult renders call/query's calls.
func listResult(calls []openapi.CallState) schema.CallListResult {
	out := schema.CallListResult{Calls: make([]schema.LiveCall, 0, len(calls))}
	for _, cs := range calls {
		lc := schema.LiveCall{CallID: cs.CallID, Direction: direction(cs.Members), Trunk: trunk(cs.Members),
			Members: make([]schema.LiveMember, 0, len(cs.Members))}
		for _, m := range cs.Members {
			lc.Members = append(lc.Members, schema.LiveMember{Kind: string(m.Kind), Number: m.Number, From: m.From, To: m.To,
				TrunkName: m.TrunkName, ChannelID: m.ChannelID, MemberStatus: string(m.Status), CallPath: m.CallPath})
		}
		out.Calls = append(out.Calls, lc)
	}
	return out
}
