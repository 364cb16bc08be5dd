package schema

import "encoding/json"

// The types of the call control request/reply bodies, on
// <prefix>.<ext>.call.dial, .hangup, .hold, .unhold, .transfer and .list.
const (
	TypeCallDialRequest     = "com.yeastar.pbx.call.dial.request.v1"
	TypeCallDialResult      = "com.yeastar.pbx.call.dial.result.v1"
	TypeCallActionRequest   = "com.yeastar.pbx.call.action.request.v1" // hangup, hold, unhold
	TypeCallTransferRequest = "com.yeastar.pbx.call.transfer.request.v1"
	TypeCallActionResult    = "com.yeastar.pbx.call.action.result.v1" // hangup, hold, unhold, transfer
	TypeCallListResult      = "com.yeastar.pbx.call.list.result.v1"
)

// CallDialRequest is the body of TypeCallDialRequest: the extension of the
// subject calls Callee (click-to-call: its phone rings first).
type CallDialRequest struct {
	Callee string `json:"callee"` // 1 to 32 of 0-9 * # +
	// AutoAnswer asks the caller's phone to answer by itself (where the
	// phone supports it).
	AutoAnswer bool `json:"auto_answer,omitempty"`
}

// CallDialResult is the body of TypeCallDialResult: the call started. Its
// events follow on <prefix>.<ext>.call.*.
type CallDialResult struct {
	CallID string `json:"call_id"`
}

// CallActionRequest is the body of TypeCallActionRequest (hangup, hold,
// unhold): exactly one of CallID (the extension's channel in that call is
// found by the bridge) and ChannelID (one of the extension's own channels).
type CallActionRequest struct {
	CallID    string `json:"call_id,omitempty"`
	ChannelID string `json:"channel_id,omitempty"`
}

// The transfer types and the operations on an attended transfer under way.
const (
	TransferBlind    = "blind"
	TransferAttended = "attended"

	AttendedComplete = "complete"
	AttendedAbort    = "abort"
	AttendedThreeway = "threeway"
	AttendedSwap     = "swap"
)

// CallTransferRequest is the body of TypeCallTransferRequest. CallID or
// ChannelID names the extension's own leg, as in CallActionRequest. A
// blind transfer moves the party the extension talks to (in a two-party
// call) to Number; an attended one consults Number first, and a second
// request with AttendedOperate (and no Number) completes, aborts, joins or
// swaps it.
type CallTransferRequest struct {
	CallID          string `json:"call_id,omitempty"`
	ChannelID       string `json:"channel_id,omitempty"`
	Type            string `json:"type"` // TransferBlind or TransferAttended
	Number          string `json:"number,omitempty"`
	AttendedOperate string `json:"attended_operate,omitempty"`
}

// CallActionResult is the body of TypeCallActionResult: the PBX took the
// action on the channel of the call.
type CallActionResult struct {
	CallID    string `json:"call_id"`
	ChannelID string `json:"channel_id"`
}

// CallListResult is the body of TypeCallListResult: the extension's live
// calls as the PBX lists them (call/query).
type CallListResult struct {
	Calls []LiveCall `json:"calls"`
}

// LiveCall is a call in progress with its whole member list.
type LiveCall struct {
	CallID    string       `json:"call_id"`
	Direction string       `json:"direction"`
	Trunk     string       `json:"trunk,omitempty"`
	Members   []LiveMember `json:"members"`
}

// LiveMember is one member of a live call: an extension or a trunk leg.
type LiveMember struct {
	Kind         string `json:"kind"` // PartyExtension, PartyInbound or PartyOutbound
	Number       string `json:"number,omitempty"`
	From         string `json:"from,omitempty"`
	To           string `json:"to,omitempty"`
	TrunkName    string `json:"trunk_name,omitempty"`
	ChannelID    string `json:"channel_id"`
	MemberStatus string `json:"member_status"`
	CallPath     string `json:"call_path,omitempty"`
}

// MarshalJSON sends nil lists as empty ones: the schema has arrays, never
// null.
func (r CallListResult) MarshalJSON() ([]byte, error) {
	type plain CallListResult
	calls := make([]LiveCall, len(r.Calls))
	for i, c := range r.Calls {
		if c.Members == nil {
			c.Members = []LiveMember{}
		}
		calls[i] = c
	}
	r.Calls = calls
	return json.Marshal(plain(r))
}
