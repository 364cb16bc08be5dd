package schema

// The live events: what the PBX's OpenAPI event socket reports
// (shared/reference/openapi-events.md), as the bridge publishes it. They
// are PBX-wide facts, not tied to a Linkus login, so they name the
// extension by its number (ext_num) rather than by an ExtensionRef.

// The CloudEvents types of the live-call events, one per subject
// <prefix>.<ext>.call.<event>.
const (
	TypeCallRinging  = "com.yeastar.pbx.call.ringing.v1"
	TypeCallAnswered = "com.yeastar.pbx.call.answered.v1"
	TypeCallHeld     = "com.yeastar.pbx.call.held.v1"
	TypeCallResumed  = "com.yeastar.pbx.call.resumed.v1"
	TypeCallEnded    = "com.yeastar.pbx.call.ended.v1"
)

// The CloudEvents types of the other live events.
const (
	TypePresenceChanged     = "com.yeastar.pbx.presence.changed.v1"     // <prefix>.<ext>.presence.changed (30009)
	TypeRegistrationChanged = "com.yeastar.pbx.registration.changed.v1" // <prefix>.<ext>.registration.changed (30007)
	TypeCallStatusChanged   = "com.yeastar.pbx.callstatus.changed.v1"   // <prefix>.<ext>.call_status.changed (30008); the envelope allows no "_" in a type
	TypeCDREnded            = "com.yeastar.pbx.cdr.ended.v1"            // <prefix>.pbx.cdr.ended (30012)
	TypeSystemInfo          = "com.yeastar.pbx.system.info.v1"          // <prefix>.pbx.system.info (30034)
	TypeSystemWarning       = "com.yeastar.pbx.system.warning.v1"       // <prefix>.pbx.system.warning (30035)
	TypeSystemAlert         = "com.yeastar.pbx.system.alert.v1"         // <prefix>.pbx.system.alert (30036)
)

// The call events, CallEvent.Event: what happened to the extension in the
// call. Its previous state (CallEvent.Previous) is one of the first three,
// since ended is final.
const (
	CallRinging  = "ringing"  // its phone rings (RING), or it hears ringback (ALERT, EARLYMEDIA)
	CallAnswered = "answered" // it talks (ANSWER, ANSWERED)
	CallHeld     = "held"     // its member is on hold (HOLD)
	CallResumed  = "resumed"  // it talks again after a hold
	CallEnded    = "ended"    // it left the call (BYE), or the call ended
)

// The directions of a call.
const (
	DirectionInbound  = "inbound"  // a member is a caller on a trunk
	DirectionOutbound = "outbound" // a member is a callee on a trunk, and none a caller on one
	DirectionInternal = "internal" // every member is an extension
)

// The kinds of call member (the reference's Extension_Info, Inbound_Info,
// Outbound_Info).
const (
	PartyExtension = "extension"
	PartyInbound   = "inbound"
	PartyOutbound  = "outbound"
)

// The causes of an ended event without the member's own BYE.
const (
	// CauseCallEnded: the call ended (every member the PBX listed hung up,
	// or its CDR came) while this member was last seen in another state.
	CauseCallEnded = "call_ended"
	// CauseGap: the call was missing from the PBX's live calls after a gap
	// in the event stream, so it ended while nobody was listening.
	CauseGap = "gap"
)

// CallEvent is the data of the five call events. Event names the event
// (and so its type), Previous the extension's state before it.
type CallEvent struct {
	Event  string `json:"event"` // CallRinging, ...
	PBX    string `json:"pbx"`   // host[:port]
	ExtNum string `json:"ext_num"`
	CallID string `json:"call_id"`
	// ChannelID is the extension's channel in the call whose state this
	// is, e.g. "PJSIP/1001-00000023".
	ChannelID string `json:"channel_id"`
	// MemberStatus is that channel's member_status as the PBX sent it
	// (ALERT, RING, ANSWERED, ANSWER, HOLD, BYE, EARLYMEDIA, or a value
	// the reference does not list).
	MemberStatus string     `json:"member_status"`
	Previous     string     `json:"previous"`  // "", ringing, answered or held
	Direction    string     `json:"direction"` // a Direction constant
	Other        *CallParty `json:"other,omitempty"`
	Trunk        string     `json:"trunk,omitempty"`     // the trunk of the call's first trunk leg
	CallPath     string     `json:"call_path,omitempty"` // the channel's call_path
	// Seq counts the extension's events in the call, from 1: the n-th
	// state change. It is part of the event's id.
	Seq int `json:"seq"`
	// Cause is set on an ended event that was not the member's own BYE.
	Cause string `json:"cause,omitempty"`
}

// CallParty is a member of a call as seen from another: the other party.
type CallParty struct {
	Kind string `json:"kind"` // PartyExtension, PartyInbound or PartyOutbound
	// Number is the extension's number, or a trunk leg's external number
	// (an inbound leg's from, an outbound leg's to).
	Number    string `json:"number"`
	TrunkName string `json:"trunk_name,omitempty"`
}

// PresenceChanged is the data of TypePresenceChanged (30009).
type PresenceChanged struct {
	PBX    string `json:"pbx"`
	ExtNum string `json:"ext_num"`
	// Status is as the PBX sent it: available, away, business_trip,
	// do_not_disturb, lunch, off_work, or a value the reference does not
	// list.
	Status   string `json:"status"`
	Previous string `json:"previous"` // "" when the bridge knew none
	Seq      int    `json:"seq"`      // the extension's presence changes, from 1
}

// RegistrationChanged is the data of TypeRegistrationChanged (30007): the
// registration of one kind of endpoint of the extension.
type RegistrationChanged struct {
	PBX          string `json:"pbx"`
	ExtNum       string `json:"ext_num"`
	Kind         string `json:"kind"`   // Sip, Mobile, Desktop, Web, Pad, as sent
	Status       string `json:"status"` // Registered or Unregistered, as sent
	RegisteredIP string `json:"registered_ip,omitempty"`
	Previous     string `json:"previous"` // the kind's previous status, "" when unknown
	Seq          int    `json:"seq"`      // the changes of this extension and kind, from 1
}

// CallStatusChanged is the data of TypeCallStatusChanged (30008).
type CallStatusChanged struct {
	PBX      string `json:"pbx"`
	ExtNum   string `json:"ext_num"`
	Status   string `json:"status"` // Ringing, Busy or Idle, as sent
	Previous string `json:"previous"`
	Seq      int    `json:"seq"`
}

// CDREnded is the data of TypeCDREnded: the PBX's record of a call that
// ended (30012), every field but pin_code, trimmed.
type CDREnded struct {
	PBX           string `json:"pbx"`
	CallID        string `json:"call_id"`
	TimeStart     string `json:"time_start"` // "YYYY-MM-DD HH:MM:SS", the PBX's time zone
	CallFrom      string `json:"call_from"`
	CallTo        string `json:"call_to"`
	CallDuration  int    `json:"call_duration"` // seconds
	TalkDuration  int    `json:"talk_duration"` // seconds
	SrcTrunkName  string `json:"src_trunk_name"`
	DstTrunkName  string `json:"dst_trunk_name"`
	Status        string `json:"status"` // ANSWERED, NO ANSWER, BUSY, VOICEMAIL, as sent
	Type          string `json:"type"`   // as sent, e.g. "Internal"
	Direction     string `json:"direction,omitempty"`
	Recording     string `json:"recording"`
	DIDNumber     string `json:"did_number"`
	AgentRingTime int    `json:"agent_ring_time"` // seconds
}

// The levels of system events, by event type.
const (
	SystemLevelInfo    = "info"    // 30034
	SystemLevelWarning = "warning" // 30035
	SystemLevelAlert   = "alert"   // 30036
)

// SystemEvent is the data of TypeSystemInfo, TypeSystemWarning and
// TypeSystemAlert (30034-30036). Level names the type; EventLevel is the
// PBX's own field.
type SystemEvent struct {
	PBX          string `json:"pbx"`
	Level        string `json:"level"`
	EventName    string `json:"event_name"` // e.g. sip_trunk_disconnect
	EventType    string `json:"event_type"` // operation, telephony, system, security, reminder
	EventLevel   string `json:"event_level"`
	EventContent string `json:"event_content"`
	CreateTime   string `json:"create_time"` // "YYYY/MM/DD HH:MM:SS", as sent
}

var callEventTypes = map[string]string{
	CallRinging:  TypeCallRinging,
	CallAnswered: TypeCallAnswered,
	CallHeld:     TypeCallHeld,
	CallResumed:  TypeCallResumed,
	CallEnded:    TypeCallEnded,
}

// CallEventType returns the type of a call event, and false for a name
// that is none of the Call constants.
func CallEventType(event string) (string, bool) {
	t, ok := callEventTypes[event]
	return t, ok
}

var systemTypes = map[string]string{
	SystemLevelInfo:    TypeSystemInfo,
	SystemLevelWarning: TypeSystemWarning,
	SystemLevelAlert:   TypeSystemAlert,
}

// SystemEventType returns the type of a system event of the level, and
// false for a level that is none of the SystemLevel constants.
func SystemEventType(level string) (string, bool) {
	t, ok := systemTypes[level]
	return t, ok
}

func (e CallEvent) schemaType() string         { return callEventTypes[e.Event] }
func (PresenceChanged) schemaType() string     { return TypePresenceChanged }
func (RegistrationChanged) schemaType() string { return TypeRegistrationChanged }
func (CallStatusChanged) schemaType() string   { return TypeCallStatusChanged }
func (CDREnded) schemaType() string            { return TypeCDREnded }
func (e SystemEvent) schemaType() string       { return systemTypes[e.Level] }
