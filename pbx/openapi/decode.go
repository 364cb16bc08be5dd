package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/loose"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/redact"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

// The reasons an event-socket frame (or a part of one) is dropped, beside
// pbx.DropNotJSON, pbx.DropBadMsg, pbx.DropTooLarge and pbx.DropOverflow.
const (
	// DropBadEnvelope: the frame is a JSON object, but its type is not an
	// integer, its sn not a string, or (a reply) its errcode not an
	// integer.
	DropBadEnvelope pbx.DropReason = "bad_envelope"
	// DropBadEvent: an event of a type this package decodes lacks a
	// required field of its msg, or has a field of the wrong JSON type.
	DropBadEvent pbx.DropReason = "bad_event"
	// DropBadMember: one member of a call could not be read; it is left
	// out (CallState.MemberErrors) and the rest of the event delivered.
	DropBadMember pbx.DropReason = "bad_member"
)

// ErrBadEventField is wrapped by the errors about a field of an event's
// msg: missing though required, or of the wrong JSON type.
var ErrBadEventField = errors.New("pbx: event field missing or of the wrong type")

// EventDecodeError is why an event-socket frame was dropped.
type EventDecodeError struct {
	Reason pbx.DropReason
	Type   EventType // the frame's type, when it could be read
	Err    error
}

func (e *EventDecodeError) Error() string {
	if e.Type != 0 {
		return fmt.Sprintf("pbx event %d dropped (%s): %v", e.Type, e.Reason, e.Err)
	}
	return fmt.Sprintf("pbx event frame dropped (%s): %v", e.Reason, e.Err)
}

func (e *EventDecodeError) Unwrap() error { return e.Err }

// EventFrameKind says what an event-socket frame is.
type EventFrameKind int

// The kinds of event-socket frames.
const (
	// EventFrameEvent carries an event: EventFrame.Event is set.
	EventFrameEvent EventFrameKind = iota + 1
	// EventFrameHeartbeat is the PBX's "heartbeat response".
	EventFrameHeartbeat
	// EventFrameReply is an answer without a type, such as the subscribe
	// reply {"errcode":0,"errmsg":"SUCCESS"}: ErrCode and ErrMsg are set.
	EventFrameReply
)

// EventFrame is one decoded event-socket frame.
type EventFrame struct {
	Kind    EventFrameKind
	Event   *Event
	ErrCode int
	ErrMsg  string
}

// DecodeEventFrame decodes one text frame of the OpenAPI event socket:
// "heartbeat response", a reply {"errcode","errmsg"}, or an event
// {"type","sn","msg"} whose msg is a JSON object or a string holding one
// (the reference's examples show both). It is strict about types (type an
// integer, sn and the msg's documented strings strings, its integers
// integers; null counts as absent) and tolerant of fields it does not know.
// A member of a call that cannot be read is left out with a MemberError;
// anything else wrong drops the whole frame with an *EventDecodeError. It
// is pure, and never panics.
func DecodeEventFrame(data []byte) (EventFrame, error) {
	if string(data) == wire.HeartbeatResponse {
		return EventFrame{Kind: EventFrameHeartbeat}, nil
	}
	top, err := readObject(data)
	if err != nil {
		return EventFrame{}, &EventDecodeError{Reason: pbx.DropNotJSON, Err: err}
	}
	rawType, hasType := top["type"]
	if !hasType || isNull(rawType) {
		return decodeReply(top)
	}
	t, ok := loose.JSONInt(rawType)
	if !ok || len(rawType) == 0 || rawType[0] == '"' {
		return EventFrame{}, &EventDecodeError{Reason: DropBadEnvelope, Err: fmt.Errorf("type is a %s, not an integer", loose.Kind(rawType))}
	}
	ev := &Event{Type: EventType(t)}
	env := fieldReader{m: top}
	ev.SN = env.str("sn")
	if env.err != nil {
		return EventFrame{}, &EventDecodeError{Reason: DropBadEnvelope, Type: ev.Type, Err: env.err}
	}
	msg, err := eventMsg(top["msg"])
	if err != nil {
		return EventFrame{}, &EventDecodeError{Reason: pbx.DropBadMsg, Type: ev.Type, Err: err}
	}
	ev.Msg = cleanMsg(msg)
	fields, err := readObject(ev.Msg)
	if err != nil { // cannot happen: eventMsg checked it is an object
		return EventFrame{}, &EventDecodeError{Reason: pbx.DropBadMsg, Type: ev.Type, Err: err}
	}
	if ev.Data, err = decodeEventData(ev.Type, fields); err != nil {
		return EventFrame{}, &EventDecodeError{Reason: DropBadEvent, Type: ev.Type, Err: err}
	}
	return EventFrame{Kind: EventFrameEvent, Event: ev}, nil
}

// decodeReply reads a frame without a type: an answer with an errcode.
func decodeReply(top map[string]json.RawMessage) (EventFrame, error) {
	raw, ok := top["errcode"]
	code, isInt := loose.JSONInt(raw)
	if !ok || !isInt || raw[0] == '"' {
		return EventFrame{}, &EventDecodeError{Reason: DropBadEnvelope, Err: errors.New("neither an integer type nor an integer errcode")}
	}
	r := fieldReader{m: top}
	msg := r.str("errmsg")
	if r.err != nil {
		return EventFrame{}, &EventDecodeError{Reason: DropBadEnvelope, Err: r.err}
	}
	return EventFrame{Kind: EventFrameReply, ErrCode: code, ErrMsg: msg}, nil
}

// eventMsg returns msg as a JSON object: as it is, or decoded once more
// from a string.
func eventMsg(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || isNull(raw):
		return nil, errors.New("no msg")
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("msg string: %w", err)
		}
		inner := bytes.TrimSpace([]byte(s))
		if len(inner) == 0 || inner[0] != '{' || !json.Valid(inner) {
			return nil, errors.New("msg is a string that does not hold a JSON object")
		}
		return inner, nil
	case raw[0] == '{':
		return raw, nil
	}
	return nil, fmt.Errorf("msg is a %s, not an object or a string", loose.Kind(raw))
}

// cleanMsg removes every pin_code field, at any depth, in any case,
// however escaped, and replaces the values of credential fields. doc is a
// valid JSON object.
func cleanMsg(doc json.RawMessage) json.RawMessage {
	lower := bytes.ToLower(doc)
	if bytes.Contains(lower, []byte("pin")) || bytes.Contains(lower, []byte(`\u`)) {
		d := json.NewDecoder(bytes.NewReader(doc))
		d.UseNumber() // numbers stay as written
		var v any
		if d.Decode(&v) == nil && dropPinCodes(v) {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			if enc.Encode(v) == nil {
				doc = bytes.TrimSpace(b.Bytes())
			}
		}
	}
	clean, _ := redact.ValidFields(doc)
	return clean
}

// dropPinCodes deletes the pin_code fields of v's objects, at any depth,
// and reports whether it deleted any.
func dropPinCodes(v any) bool {
	dropped := false
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if strings.EqualFold(k, "pin_code") {
				delete(x, k)
				dropped = true
			} else if dropPinCodes(e) {
				dropped = true
			}
		}
	case []any:
		for _, e := range x {
			if dropPinCodes(e) {
				dropped = true
			}
		}
	}
	return dropped
}

// decodeEventData decodes the msg of the types this package knows; nil for
// the others.
func decodeEventData(t EventType, m map[string]json.RawMessage) (EventData, error) {
	r := &fieldReader{m: m}
	var d EventData
	switch t {
	case EventCallState:
		cs, err := decodeCallInfo(m)
		if err != nil {
			return nil, err
		}
		d = cs
	case EventCallFailed:
		cs, err := decodeCallInfo(m)
		if err != nil {
			return nil, err
		}
		d = &CallFailed{CallState: *cs, Reason: r.str("reason")}
	case EventNewCDR:
		d = decodeNewCDR(r)
	case EventRegistration:
		d = &RegistrationChange{Extension: r.required("extension"), Kind: r.str("kind"), Status: r.required("status"), RegisteredIP: r.str("registered_ip")}
	case EventExtensionCallStatus:
		d = &ExtensionCallStatus{Extension: r.required("extension"), Status: r.required("status")}
	case EventPresence:
		d = &PresenceChange{Extension: r.required("extension"), Status: r.required("status")}
	case EventSystemInfo, EventSystemWarning, EventSystemAlert:
		d = &SystemEvent{EventName: r.required("event_name"), EventType: r.str("event_type"), EventLevel: r.str("event_level"),
			EventContent: r.str("event_content"), CreateTime: r.str("create_time")}
	default:
		return nil, nil
	}
	if r.err != nil {
		return nil, r.err
	}
	return d, nil
}

func decodeNewCDR(r *fieldReader) *NewCDR {
	return &NewCDR{
		CallID:        r.required("call_id"),
		TimeStart:     r.str("time_start"),
		CallFrom:      r.str("call_from"),
		CallTo:        r.str("call_to"),
		CallDuration:  r.int("call_duration"),
		TalkDuration:  r.int("talk_duration"),
		SrcTrunkName:  r.str("src_trunk_name"),
		DstTrunkName:  r.str("dst_trunk_name"),
		Status:        r.str("status"),
		Type:          r.str("type"),
		Recording:     r.str("recording"),
		DIDNumber:     r.str("did_number"),
		AgentRingTime: r.int("agent_ring_time"),
	}
}
