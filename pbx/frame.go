package pbx

import (
	"bytes"
	"encoding/json"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/loose"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/redact"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

// FrameKind says what a decoded subscribe-socket frame asks of the client.
type FrameKind int

// The kinds of frames that are not dropped.
const (
	// FrameNotification carries a notification: Type, Msg and Event are set.
	FrameNotification FrameKind = iota + 1
	// FrameHeartbeat is the PBX's "heartbeat response".
	FrameHeartbeat
	// FrameResubscribe is a frame with errcode -3: send the topic list again.
	FrameResubscribe
)

// DropReason says why a frame or an event was thrown away, on the subscribe
// socket or on the OpenAPI event socket (pbx/openapi adds reasons of its
// own). Its string is what Hooks.FrameDropped receives.
type DropReason string

// The reasons for dropping.
const (
	// DropNotJSON: the frame is not a JSON object (nor "heartbeat
	// response"), or it is a binary frame.
	DropNotJSON DropReason = "not_json"
	// DropErrcode2: the frame has errcode -2, which the SDK ignores.
	DropErrcode2 DropReason = "errcode_-2"
	// DropBadMsg: msg is missing, not a string, or not JSON once decoded
	// (or, for a type whose msg the client reads, not a JSON object).
	DropBadMsg DropReason = "bad_msg"
	// DropTooLarge: the frame exceeded Config.MaxFrameBytes; the socket was
	// closed and is reconnected.
	DropTooLarge DropReason = "too_large"
	// DropUnknownType: type is missing, not an integer, or not a type of the
	// reference table (the client never subscribes to it).
	DropUnknownType DropReason = "unknown_type"
	// DropOverflow: the consumer was too slow; see the package doc.
	DropOverflow DropReason = "overflow"
)

// Frame is one decoded subscribe-socket frame.
type Frame struct {
	Kind FrameKind
	// Type is the notification type; it is also set on a dropped frame when
	// it was readable (for the log).
	Type int
	// Msg is the msg string decoded once more: valid JSON, with the value
	// of every credential field replaced (RedactCredentialFields).
	Msg json.RawMessage
	// Event is what a session delivers for the notification: *CDRChanged
	// for 20049, *Notice for every other type.
	Event Event
	// Problems lists the fields of a 20049 msg that could not be read as
	// their type (read loosely, as the SDK's JavaScript does) and were left
	// zero; a session reports them as endpoint "socket:20049".
	Problems []FieldProblem
}

// knownTypes are the notification types of the reference table.
var knownTypes = map[int]bool{
	TypeLogin: true, TypeDesktopClient: true, TypeExtensionDeleted: true,
	TypeRecordFeatureCode: true, TypeReLogin: true, TypeWebClient: true,
	TypeRecordPermission: true, TypeRecordStatus: true, TypeCDRChanged: true,
	TypeLicense: true, TypeNATFQDN: true, TypeSIPRegistration: true,
	TypeInternalClient: true, TypeHotStandby: true, TypeSDKPlan: true,
	TypeReLogin2: true,
}

// objectMsgTypes are the types whose msg the client reads a field of: their
// msg must be a JSON object.
var objectMsgTypes = map[int]bool{
	TypeLogin: true, TypeDesktopClient: true, TypeWebClient: true,
	TypeInternalClient: true, TypeSDKPlan: true,
}

// DecodeFrame decodes one text frame of the subscribe socket, as the SDK
// does: "heartbeat response"; a JSON object {"type", "msg", "errcode"?}
// whose msg is a string holding a JSON document. It returns the frame, or a
// non-empty DropReason (with what could be read of the frame). It is pure:
// no I/O, no state, and it never panics.
//
// Keys are matched exactly, as JavaScript does. errcode -3 wins over
// everything else in the frame (resubscribe); errcode -2 drops the frame;
// other errcodes are read as a plain notification. A 20049 msg of an
// unexpected shape still yields a *CDRChanged (with the fields that did
// decode, read loosely: "1693201380" is a timestamp, and what cannot be
// read is listed in Problems): the notification only says "query the CDR
// list again", and dropping it would lose that. A 20104 whose msg is missing or bad still
// yields a Notice (Msg null): the client needs no payload to subscribe
// again, and missing a switch-over would silence the socket. The value of
// every credential field of msg, at any depth, is replaced with
// RemovedCredential (see RedactCredentialFields) before anything reads it.
func DecodeFrame(data []byte) (Frame, DropReason) {
	if string(data) == wire.HeartbeatResponse {
		return Frame{Kind: FrameHeartbeat}, ""
	}
	body := bytes.TrimSpace(data)
	if len(body) == 0 || body[0] != '{' {
		return Frame{}, DropNotJSON
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return Frame{}, DropNotJSON
	}
	var f Frame
	typ, typeOK := loose.JSONInt(fields["type"])
	if typeOK {
		f.Type = typ
	}
	if code, ok := loose.Number(fields["errcode"]); ok {
		switch code {
		case -3:
			f.Kind = FrameResubscribe
			return f, ""
		case -2:
			return f, DropErrcode2
		}
	}
	if !typeOK || !knownTypes[typ] {
		return f, DropUnknownType
	}
	msg, ok := decodeMsg(fields["msg"])
	switch {
	case !ok && typ == TypeHotStandby:
		msg = json.RawMessage("null")
	case !ok:
		return f, DropBadMsg
	case objectMsgTypes[typ] && msg[0] != '{':
		return f, DropBadMsg
	}
	// Credentials stop here: nothing downstream (events, logs, the
	// runtime rules) needs one, and 20066 carries the SIP password.
	msg, _ = redact.ValidFields(msg) // decodeMsg checked it is valid JSON
	f.Kind, f.Msg = FrameNotification, msg
	if typ == TypeCDRChanged {
		cdr := new(CDRChanged)
		// A field of an unexpected type stays zero and is reported; see
		// above.
		f.Problems = decodeLoose(msg, cdr)
		f.Event = cdr
	} else {
		f.Event = &Notice{Type: typ, Msg: msg}
	}
	return f, ""
}

// decodeMsg decodes the msg field: a JSON string that holds a JSON document.
func decodeMsg(raw json.RawMessage) (json.RawMessage, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false
	}
	doc := bytes.TrimSpace([]byte(s))
	if len(doc) == 0 || !json.Valid(doc) {
		return nil, false
	}
	return json.RawMessage(doc), true
}

// runtimeRules decide which notifications are runtime errors for one
// session.
type runtimeRules struct {
	username  string
	plan      string // "en" or "cn"
	userAgent string
}

// check returns the runtime error a notification raises for this session, or
// nil. Flags are compared with 1 as the SDK's JavaScript == does (jsIsOne):
// 1, 1.0, "1" and true keep the client enabled; anything else (0, "0", "",
// null, a missing field, an object) disables. The username of a 10000 must
// be this extension's, as a string.
func (r runtimeRules) check(f Frame) *RuntimeError {
	if f.Kind != FrameNotification {
		return nil
	}
	// Only the types below read a field of msg: parse it for them alone,
	// not for every notification that passes.
	var m map[string]json.RawMessage
	if objectMsgTypes[f.Type] {
		m = rawFields(f.Msg)
	}
	isOne := func(key string) bool { return jsIsOne(m[key]) }
	rt := func(sdk *Error, detail string) *RuntimeError {
		return &RuntimeError{SDK: sdk, Type: f.Type, Detail: detail}
	}
	switch f.Type {
	case TypeLogin:
		var u string
		if raw := m["username"]; len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &u) == nil && u == r.username {
			return rt(ErrLoggedInElsewhere, "the extension logged in elsewhere")
		}
	case TypeExtensionDeleted:
		return rt(ErrExtensionDeleted, "the extension was deleted")
	case TypeReLogin, TypeReLogin2:
		return rt(ErrReLogin, "the PBX asks to log in again")
	case TypeSDKPlan:
		if !isOne("enable") {
			return rt(ErrSDKPlanDisabled, "enable is not 1")
		}
	case TypeWebClient:
		if r.plan == "en" && r.userAgent == UserAgentWebClient && !isOne("enb_web_client") {
			return rt(ErrLinkusDisabled, "enb_web_client is not 1 (en plan, WebClient)")
		}
	case TypeDesktopClient:
		if r.plan == "en" && r.userAgent == UserAgentWebPC && !isOne("enb_desktop_client") {
			return rt(ErrLinkusDisabled, "enb_desktop_client is not 1 (en plan, WebPC)")
		}
	case TypeInternalClient:
		if r.plan == "cn" && !isOne("enb_internal_client") {
			return rt(ErrLinkusDisabled, "enb_internal_client is not 1 (cn plan)")
		}
	}
	return nil
}
