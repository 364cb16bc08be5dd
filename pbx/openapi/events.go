package openapi

import (
	"encoding/json"
	"fmt"
	"strings"
)

// EventType is the type of an OpenAPI event: the "type" of an event-socket
// frame, and what a topic_list names (shared/reference/openapi-events.md).
type EventType int

// The OpenAPI events this package decodes. Most are sent only while the
// matching monitor is enabled on the PBX (Integrations > API).
const (
	// EventRegistration is 30007 Extension Registration Status Changed:
	// a *RegistrationChange.
	EventRegistration EventType = 30007
	// EventExtensionCallStatus is 30008 Extension Call Status Changed: an
	// *ExtensionCallStatus.
	EventExtensionCallStatus EventType = 30008
	// EventPresence is 30009 Extension Presence Status Changed: a
	// *PresenceChange.
	EventPresence EventType = 30009
	// EventCallState is 30011 Call Status Changed ("Call State Changed"):
	// a *CallState with the whole member list of one call.
	EventCallState EventType = 30011
	// EventNewCDR is 30012 New CDR, sent when a call ends: a *NewCDR.
	EventNewCDR EventType = 30012
	// EventCallFailed is 30015 Call Failed (a dial refused, for one): a
	// *CallFailed.
	EventCallFailed EventType = 30015
	// EventSystemInfo, EventSystemWarning and EventSystemAlert are 30034,
	// 30035 and 30036 System Event Notification: a *SystemEvent.
	EventSystemInfo    EventType = 30034
	EventSystemWarning EventType = 30035
	EventSystemAlert   EventType = 30036
)

// Event is one event of the OpenAPI event socket, decoded.
type Event struct {
	Type EventType
	// SN is the PBX's serial number ("sn"): the same on every frame of one
	// PBX. It is not a sequence number, and says nothing of order or loss.
	SN string
	// Msg is the event's msg as a JSON object, decoded once more when the
	// PBX sent it as a string. The value of every credential field is
	// replaced (pbx.RedactCredentialFields) and any pin_code field is removed.
	Msg json.RawMessage
	// Data is the decoded msg: one of the pointer types named by the
	// EventType constants, or nil for a type this package does not decode
	// (read Msg).
	Data EventData
}

// EventData is the decoded msg of an Event: *CallState,
// *CallFailed, *NewCDR, *RegistrationChange, *ExtensionCallStatus,
// *PresenceChange or *SystemEvent.
type EventData interface{ isEventData() }

// MemberKind says which of the reference's member objects a call member
// came in.
type MemberKind string

// The kinds of call member.
const (
	MemberExtension MemberKind = "extension" // Extension_Info: an extension of the PBX
	MemberInbound   MemberKind = "inbound"   // Inbound_Info: a caller on a trunk
	MemberOutbound  MemberKind = "outbound"  // Outbound_Info: a callee on a trunk
)

// MemberStatus is a member_status as the PBX sent it. Statuses this package
// does not know are kept as they came (see Known).
type MemberStatus string

// The member statuses of the reference.
const (
	StatusAlert      MemberStatus = "ALERT"      // the caller hears ringback
	StatusRing       MemberStatus = "RING"       // the callee is ringing
	StatusAnswered   MemberStatus = "ANSWERED"   // the caller's call was answered
	StatusAnswer     MemberStatus = "ANSWER"     // the callee answered: talking
	StatusHold       MemberStatus = "HOLD"       // on hold
	StatusBye        MemberStatus = "BYE"        // hung up
	StatusEarlyMedia MemberStatus = "EARLYMEDIA" // an outbound leg got a 183 (zh-cn page only)
)

// Known reports whether the status is one of the reference's.
func (s MemberStatus) Known() bool {
	switch s {
	case StatusAlert, StatusRing, StatusAnswered, StatusAnswer, StatusHold, StatusBye, StatusEarlyMedia:
		return true
	}
	return false
}

// Talking reports whether the member is in a connected call (ANSWER or
// ANSWERED).
func (s MemberStatus) Talking() bool { return s == StatusAnswer || s == StatusAnswered }

// CallMember is one element of a call's members: an extension, or a trunk
// leg (inbound or outbound). Strings are trimmed of surrounding spaces (the
// PBX sends " " for empty).
type CallMember struct {
	Kind MemberKind
	// Number is the extension's number (Extension_Info.number); empty for
	// a trunk leg.
	Number string
	// From, To and TrunkName describe a trunk leg (from, to, trunk_name);
	// empty for an extension.
	From, To, TrunkName string
	// ChannelID is channel_id, e.g. "PJSIP/2005-00000023": what Hangup,
	// Hold, Unhold and Transfer take.
	ChannelID string
	Status    MemberStatus // member_status
	// CallPath is call_path: set only when the call passes through an IVR,
	// queue, ring group, paging/intercom or conference.
	CallPath string
}

// MemberError is a member of a call that could not be read: it is left out
// of the call's Members, and the rest of the call is still usable.
type MemberError struct {
	Index int   // the member's position in the PBX's list, from 0
	Err   error // what is wrong with it
}

func (e *MemberError) Error() string { return fmt.Sprintf("member %d: %v", e.Index, e.Err) }

func (e *MemberError) Unwrap() error { return e.Err }

// CallState is 30011's msg (Call_Info), and one item of QueryCalls: a call
// and its whole member list, as the PBX repeats it on every change.
type CallState struct {
	CallID  string // call_id
	Members []CallMember
	// MemberErrors lists the members that could not be read, in order.
	MemberErrors []*MemberError
}

// Member returns the member with the channel id, and false if there is none.
func (c *CallState) Member(channelID string) (CallMember, bool) {
	for _, m := range c.Members {
		if m.ChannelID == channelID {
			return m, true
		}
	}
	return CallMember{}, false
}

// Ended reports whether every member the call lists has hung up (BYE). A
// call with no readable member has not ended by this measure.
func (c *CallState) Ended() bool {
	for _, m := range c.Members {
		if m.Status != StatusBye {
			return false
		}
	}
	return len(c.Members) > 0
}

// CallFailed is 30015's msg: a call that failed, with why.
type CallFailed struct {
	CallState
	Reason string // reason, e.g. "NO Dial Permission", "486 Busy here"
}

// NewCDR is 30012's msg: the record of a call that ended. The PBX's
// pin_code is never kept. Strings are trimmed (the PBX sends " " for
// empty).
type NewCDR struct {
	CallID        string // call_id
	TimeStart     string // time_start, "YYYY-MM-DD HH:MM:SS" in the PBX's time zone
	CallFrom      string // call_from
	CallTo        string // call_to
	CallDuration  int    // call_duration, seconds
	TalkDuration  int    // talk_duration, seconds
	SrcTrunkName  string // src_trunk_name
	DstTrunkName  string // dst_trunk_name
	Status        string // status: ANSWERED, NO ANSWER, BUSY, VOICEMAIL, as sent
	Type          string // type, as sent: the example says "Internal", the table "internal"
	Recording     string // recording: the file name
	DIDNumber     string // did_number
	AgentRingTime int    // agent_ring_time, seconds
}

// CallType returns Type in lower case ("internal", "inbound", "outbound"),
// since the reference's table and example disagree on its case.
func (c *NewCDR) CallType() string { return strings.ToLower(c.Type) }

// RegistrationChange is 30007's msg.
type RegistrationChange struct {
	Extension    string // extension
	Kind         string // kind: Sip, Mobile, Desktop, Web or Pad, as sent
	Status       string // status: Registered or Unregistered, as sent
	RegisteredIP string // registered_ip
}

// ExtensionCallStatus is 30008's msg.
type ExtensionCallStatus struct {
	Extension string // extension
	Status    string // status: Ringing, Busy or Idle, as sent
}

// PresenceChange is 30009's msg.
type PresenceChange struct {
	Extension string // extension
	// Status is status: available, away, business_trip, do_not_disturb,
	// lunch or off_work, as sent.
	Status string
}

// SystemEvent is the msg of 30034, 30035 and 30036.
type SystemEvent struct {
	EventName    string // event_name, e.g. "sip_trunk_disconnect"
	EventType    string // event_type: operation, telephony, system, security or reminder
	EventLevel   string // event_level: info, warn or error
	EventContent string // event_content
	CreateTime   string // create_time, "YYYY/MM/DD HH:MM:SS"
}

func (*CallState) isEventData()           {}
func (*CallFailed) isEventData()          {}
func (*NewCDR) isEventData()              {}
func (*RegistrationChange) isEventData()  {}
func (*ExtensionCallStatus) isEventData() {}
func (*PresenceChange) isEventData()      {}
func (*SystemEvent) isEventData()         {}
