package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/httpapi"
)

// Errors of call control. A refusal by the PBX is an *Error whose
// Kind is one of the first three; CallControlStatus maps any error of these
// calls to an HTTP status.
var (
	// ErrCallNotFound: the PBX knows no such call, channel or number
	// (errcode 60001 DATA NOT FOUND). HTTP 404.
	ErrCallNotFound = errors.New("pbx: the PBX knows no such call, channel or number")
	// ErrCallRefused: the PBX refused the request (a parameter, a
	// permission, an action the call's state forbids: any errcode not
	// named by the other two). HTTP 400.
	ErrCallRefused = errors.New("pbx: the PBX refused the call control request")
	// ErrCallUnavailable: the PBX cannot take the request now (errcodes
	// -2, 2, 10001-10004, 60002, 70004), or the client cannot get an
	// access token (it also wraps the token's error). HTTP 503.
	ErrCallUnavailable = errors.New("pbx: the PBX cannot take call control requests now")
	// ErrInvalidCallRequest: the request was not sent because a parameter
	// is missing or malformed. HTTP 400.
	ErrInvalidCallRequest = errors.New("pbx: invalid call control request")
)

// CallControlStatus maps an error of Dial, Hangup, Hold, Unhold, Transfer
// or QueryCalls to an HTTP status: 200 for nil, 400 for an invalid or
// refused request, 404 for an unknown call or channel, 503 when the PBX (or
// the client's token) is unavailable, 502 for a failure to reach the PBX or
// read its answer (*pbx.TransportError), and for anything else.
func CallControlStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrInvalidCallRequest), errors.Is(err, ErrCallRefused):
		return http.StatusBadRequest
	case errors.Is(err, ErrCallNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrCallUnavailable), errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// callKind is what a call control errcode means (the reference's table).
func callKind(code int) error {
	switch code {
	case 60001:
		return ErrCallNotFound
	case -2, 2, 10001, 10002, 10003, httpapi.ErrCodeTokenInvalid, 60002, 70004:
		return ErrCallUnavailable
	}
	return ErrCallRefused
}

// TransferType is call/transfer's type.
type TransferType string

// The transfer types.
const (
	TransferBlind    TransferType = "blind"
	TransferAttended TransferType = "attended"
)

// AttendedOperation is call/transfer's attended_operate: what to do with an
// attended transfer under way. The P-Series page's values were not
// retrieved; these are the S-Series API's (call/attended_transfer_operate).
type AttendedOperation string

// The attended transfer operations.
const (
	AttendedComplete AttendedOperation = "complete" // connect the held party to the target
	AttendedAbort    AttendedOperation = "abort"    // cancel: back to the held party
	AttendedThreeway AttendedOperation = "threeway" // all three talk
	AttendedSwap     AttendedOperation = "swap"     // talk to the other party
)

// TransferRequest is call/transfer's body.
type TransferRequest struct {
	Type TransferType
	// ChannelID is, for a blind transfer, the channel of the member moved
	// (A, in "A and B talk, A goes to C"); for an attended one, the
	// transferor's (B).
	ChannelID string
	// Number is the target. Required for a blind transfer and to start an
	// attended one.
	Number string
	// DialPermission is the transferor's extension, whose dial permission
	// applies. Required wherever Number is.
	DialPermission string
	// AttendedOperate acts on an attended transfer under way; set it (and
	// neither Number nor DialPermission) for the second call.
	AttendedOperate AttendedOperation
}

// CallQuery selects live calls for QueryCalls: exactly one field is set.
type CallQuery struct {
	CallID    string
	Type      string // inbound, outbound or internal
	Extension string
}

// Dial starts a call from caller to callee (call/dial): the PBX rings the
// caller first, and the callee once the caller answers. autoAnswer asks the
// caller's phone to answer by itself (auto_answer "yes"; it is left out
// otherwise, since the reference documents no values and no default).
// The result is the call's call_id: the call started, nothing more. Its
// channels come with 30011 events (or QueryCalls); a failure may come later
// as 30015.
func (o *Client) Dial(ctx context.Context, caller, callee string, autoAnswer bool) (string, error) {
	if err := checkNumbers("caller", caller, "callee", callee); err != nil {
		return "", err
	}
	body := map[string]string{"caller": caller, "callee": callee}
	if autoAnswer {
		body["auto_answer"] = "yes"
	}
	return o.callAction(ctx, "call/dial", body, true)
}

// Hangup hangs up the member with the channel (call/hangup).
func (o *Client) Hangup(ctx context.Context, channelID string) error {
	return o.channelAction(ctx, "call/hangup", channelID)
}

// Hold puts the member with the channel on hold (call/hold): channelID is
// the member who holds.
func (o *Client) Hold(ctx context.Context, channelID string) error {
	return o.channelAction(ctx, "call/hold", channelID)
}

// Unhold resumes the held member with the channel (call/unhold).
func (o *Client) Unhold(ctx context.Context, channelID string) error {
	return o.channelAction(ctx, "call/unhold", channelID)
}

func (o *Client) channelAction(ctx context.Context, ep, channelID string) error {
	if err := checkChannel(channelID); err != nil {
		return err
	}
	_, err := o.callAction(ctx, ep, map[string]string{"channel_id": channelID}, false)
	return err
}

// Transfer transfers a call (call/transfer), blind or attended; see
// TransferRequest for which fields each needs.
func (o *Client) Transfer(ctx context.Context, req TransferRequest) error {
	if err := checkChannel(req.ChannelID); err != nil {
		return err
	}
	body := map[string]string{"type": string(req.Type), "channel_id": req.ChannelID}
	start := req.Type == TransferBlind || req.Type == TransferAttended && req.AttendedOperate == ""
	switch {
	case req.Type != TransferBlind && req.Type != TransferAttended:
		return fmt.Errorf("%w: transfer type %q is neither blind nor attended", ErrInvalidCallRequest, req.Type)
	case start && req.AttendedOperate != "":
		return fmt.Errorf("%w: attended_operate is for an attended transfer only", ErrInvalidCallRequest)
	case start:
		if err := checkNumbers("number", req.Number, "dial_permission", req.DialPermission); err != nil {
			return err
		}
		body["number"], body["dial_permission"] = req.Number, req.DialPermission
	default:
		switch req.AttendedOperate {
		case AttendedComplete, AttendedAbort, AttendedThreeway, AttendedSwap:
		default:
			return fmt.Errorf("%w: attended_operate %q is none of complete, abort, threeway, swap", ErrInvalidCallRequest, req.AttendedOperate)
		}
		if req.Number != "" || req.DialPermission != "" {
			return fmt.Errorf("%w: attended_operate takes neither number nor dial_permission", ErrInvalidCallRequest)
		}
		body["attended_operate"] = string(req.AttendedOperate)
	}
	_, err := o.callAction(ctx, "call/transfer", body, false)
	return err
}

// QueryCalls lists the live calls that q selects (call/query), each as 30011
// reports a call. An item without a readable call_id or members is left out
// (and logged); a member that cannot be read is in its MemberErrors.
func (o *Client) QueryCalls(ctx context.Context, q CallQuery) ([]CallState, error) {
	params := url.Values{}
	set := 0
	for _, p := range []struct{ name, v string }{{"call_id", q.CallID}, {"type", q.Type}, {"extension", q.Extension}} {
		if p.v != "" {
			set++
			params.Set(p.name, p.v)
		}
	}
	switch {
	case set != 1:
		return nil, fmt.Errorf("%w: a call query takes exactly one of call_id, type, extension", ErrInvalidCallRequest)
	case q.Type != "" && q.Type != "inbound" && q.Type != "outbound" && q.Type != "internal":
		return nil, fmt.Errorf("%w: call query type %q is none of inbound, outbound, internal", ErrInvalidCallRequest, q.Type)
	case q.CallID != "" && !ValidCallID(q.CallID):
		return nil, fmt.Errorf("%w: call_id %q is malformed", ErrInvalidCallRequest, q.CallID)
	case q.Extension != "":
		if err := checkNumbers("extension", q.Extension); err != nil {
			return nil, err
		}
	}
	var out struct {
		Data json.RawMessage `json:"data"`
	}
	if err := o.callControl(ctx, http.MethodGet, "call/query", params, nil, &out); err != nil {
		return nil, err
	}
	return o.decodeCalls(out.Data)
}

// decodeCalls reads call/query's data: an array of Call_Info.
func (o *Client) decodeCalls(data json.RawMessage) ([]CallState, error) {
	var items []json.RawMessage
	if len(data) == 0 || isNull(data) || json.Unmarshal(data, &items) != nil {
		return nil, &pbx.TransportError{Endpoint: openAPIPrefix + "call/query", SDK: pbx.ErrPBXNetwork, Err: errors.New("answer's data is not an array")}
	}
	calls := make([]CallState, 0, len(items))
	for i, raw := range items {
		m, err := readObject(raw)
		var cs *CallState
		if err == nil {
			cs, err = decodeCallInfo(m)
		}
		if err != nil {
			o.log.Warn("pbx openapi: call/query item left out", "index", i, "err", err)
			continue
		}
		calls = append(calls, *cs)
	}
	return calls, nil
}

// callAction posts a call control action and returns the answer's call_id;
// needID makes a missing one an error.
func (o *Client) callAction(ctx context.Context, ep string, body map[string]string, needID bool) (string, error) {
	var out struct {
		CallID any `json:"call_id"`
	}
	if err := o.callControl(ctx, http.MethodPost, ep, nil, body, &out); err != nil {
		return "", err
	}
	id := strings.TrimSpace(looseString(out.CallID))
	if id == "" && needID {
		return "", &pbx.TransportError{Endpoint: openAPIPrefix + ep, SDK: pbx.ErrPBXNetwork, Err: errors.New("answer has no call_id")}
	}
	return id, nil
}

// callControl makes a call control request with the held token. Only a
// refusal that says the token is stale (errcode 10004, HTTP 401/403, an
// errmsg naming the token) renews it and retries once: any other refusal
// is the PBX's answer, and an action is never sent twice for it.
func (o *Client) callControl(ctx context.Context, method, ep string, q url.Values, body, out any) error {
	token, err := o.token(ctx, "")
	if err != nil {
		return tokenUnavailable(err)
	}
	data, err := o.do(ctx, method, ep, token, q, body, nil)
	if tokenStale(err) {
		o.log.Debug("pbx openapi: token refused, retrying once with a renewed one", "endpoint", ep)
		if token, err = o.token(ctx, token); err != nil {
			return tokenUnavailable(err)
		}
		data, err = o.do(ctx, method, ep, token, q, body, nil)
	}
	if oe := (*Error)(nil); errors.As(err, &oe) {
		oe.Kind = callKind(oe.ErrCode)
		if oe.HTTPStatus == http.StatusUnauthorized || oe.HTTPStatus == http.StatusForbidden {
			oe.Kind = ErrCallUnavailable
		}
		return oe
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return &pbx.TransportError{Endpoint: openAPIPrefix + ep, SDK: pbx.ErrPBXNetwork, Err: fmt.Errorf("decoding the answer: %w", err)}
		}
	}
	return nil
}

// tokenUnavailable wraps the failure to get a token: the PBX refusing the
// credentials or unreachable, the client closed.
func tokenUnavailable(err error) error {
	var te *pbx.TransportError
	if errors.Is(err, ErrClosed) || errors.As(err, &te) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrCallUnavailable, err)
}

// tokenStale reports whether a refusal says the token may be stale.
func tokenStale(err error) bool {
	var oe *Error
	if !errors.As(err, &oe) {
		return false
	}
	return oe.ErrCode == httpapi.ErrCodeTokenInvalid || oe.HTTPStatus == http.StatusUnauthorized || oe.HTTPStatus == http.StatusForbidden ||
		strings.Contains(strings.ToUpper(oe.ErrMsg), "TOKEN")
}

// checkNumbers validates pairs of (name, value) of numbers to dial: 1 to 32
// of the characters a phone dials (digits, *, #, +).
func checkNumbers(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if v := pairs[i+1]; !ValidNumber(v) {
			return fmt.Errorf("%w: %s %q is not a number to dial (1 to 32 of 0-9 * # +)", ErrInvalidCallRequest, pairs[i], v)
		}
	}
	return nil
}

// checkChannel validates a channel id such as "PJSIP/2005-00000023".
func checkChannel(ch string) error {
	if !ValidChannelID(ch) {
		return fmt.Errorf("%w: channel_id %q is empty, too long or has characters a channel id does not", ErrInvalidCallRequest, ch)
	}
	return nil
}

// ValidNumber, ValidCallID and ValidChannelID are the rules the client
// holds call control parameters to before it sends anything: a caller that
// refuses a request itself (with its own error) checks with them, so the
// two never differ.

// ValidNumber reports whether s is a number to dial: 1 to 32 of the
// characters a phone dials (digits, *, #, +).
func ValidNumber(s string) bool {
	return s != "" && len(s) <= 32 && strings.Trim(s, "0123456789*#+") == ""
}

// ValidCallID reports whether s can be a call_id: 1 to 64 letters, digits,
// dots, underscores and dashes.
func ValidCallID(s string) bool { return safeToken(s, 64, "._-") }

// ValidChannelID reports whether s can be a channel id such as
// "PJSIP/2005-00000023".
func ValidChannelID(s string) bool { return safeToken(s, 128, "/-_.@:;") }

// safeToken reports whether s is 1 to n letters, digits and the extra
// characters.
func safeToken(s string, n int, extra string) bool {
	if s == "" || len(s) > n {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune(extra, r)) {
			return false
		}
	}
	return true
}
