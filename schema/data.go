package schema

import (
	"encoding/json"
	"time"
)

// ExtensionRef names the extension an event or reply is about: the one the
// bridge is logged in as.
type ExtensionRef struct {
	Number string `json:"number"`
	ID     int    `json:"id"`
	Name   string `json:"name,omitempty"`
}

// CDRChanged is the data of TypeCDRChanged: the PBX's notification that the
// extension's CDR list changed (20049). It carries the PBX's summary only; the
// record itself follows as a CDRCreated.
type CDRChanged struct {
	Extension   ExtensionRef `json:"extension"`
	PBX         string       `json:"pbx"` // host[:port]
	ExtNum      string       `json:"ext_num"`
	PersonalCDR PersonalCDR  `json:"personal_cdr"`
}

// PersonalCDR is the PBX's summary of a call inside a CDR notification.
type PersonalCDR struct {
	Date         string `json:"date"`
	Time         string `json:"time"`
	Timestamp    int64  `json:"timestamp"` // Unix seconds
	Number       string `json:"number"`
	TalkDuration int    `json:"talk_duration"` // seconds
}

// CDRCreated is the data of TypeCDRCreated: one CDR record of the extension,
// published once per record, live or during catch-up.
type CDRCreated struct {
	Extension ExtensionRef `json:"extension"`
	PBX       string       `json:"pbx"`
	Record    CDR          `json:"record"`
}

// The CDR dispositions known today. New values may be added within a version,
// so a consumer must have a branch for values it does not know.
const (
	DispositionAnswered  = "ANSWERED"
	DispositionNoAnswer  = "NO ANSWER"
	DispositionBusy      = "BUSY"
	DispositionFailed    = "FAILED"
	DispositionVoicemail = "VOICEMAIL"
)

// CDR is one CDR record with every field the PBX gives (the SDK's
// personal_cdr_list item). It is the one type of a call record: the PBX
// client decodes it (pbx.CDR), the simulator serves it (pbxtest.CDR), and
// the events carry it.
type CDR struct {
	ID           int          `json:"id"`
	Date         string       `json:"date"`      // as the PBX renders it, e.g. "Today"
	Time         string       `json:"time"`      // e.g. "17:21:39"
	Timestamp    int64        `json:"timestamp"` // Unix seconds
	Number       string       `json:"number"`
	NumberType   string       `json:"number_type"`
	Extension    CDRExtension `json:"extension"`
	Status       CDRStatus    `json:"status"` // 1 incoming, 2 missed, 3 outgoing
	TalkDuration int          `json:"talk_duration"`
	CallType     string       `json:"call_type"`
	UniqueID     string       `json:"uniqueid"`
	Disposition  string       `json:"disposition"`
	DContext     string       `json:"dcontext"`
	CallerID     string       `json:"caller_id"`
	CLID         string       `json:"clid"`
}

// CDRStatus is a record's status, and the SDK's status filter of a query.
type CDRStatus int

// The SDK's status values.
const (
	CDRStatusAll      CDRStatus = 0 // a query's filter only
	CDRStatusIncoming CDRStatus = 1
	CDRStatusMissed   CDRStatus = 2
	CDRStatusOutgoing CDRStatus = 3
)

// Missed reports whether the record is a missed call: status 2, or an
// incoming call with disposition NO ANSWER. An outgoing call that nobody
// answered is not one: its number is the callee, not someone to call back.
func (c CDR) Missed() bool {
	return c.Status == CDRStatusMissed || c.Status == CDRStatusIncoming && c.Disposition == DispositionNoAnswer
}

// CDRExtension is the extension block inside a CDR record. The names are the
// PBX's, misspellings included.
type CDRExtension struct {
	ExtID               int    `json:"ext_id"`
	ExtNum              string `json:"ext_num"`
	CallerIDName        string `json:"caller_id_name"`
	Photo               string `json:"photo"`
	Status              int    `json:"status"`
	PresenceStatus      string `json:"presence_status"`
	PresenceInformation string `json:"presence_information"`
	FirstName           string `json:"first_name"`
	LastName            string `json:"last_name"`
	EmailAddr           string `json:"email_addr"`
	MobileNumber        string `json:"mobile_number"`
	EnbVM               int    `json:"enb_vm"`
	VMTotalCount        int    `json:"vm_total_count"`
	VMUnreadCount       int    `json:"vm_unread_count"`
	Visable             int    `json:"visable"`
	IMID                string `json:"im_id"`
	OrgListInfo         string `json:"org_list_info"`
	IsFavorite          int    `json:"is_favorite"`
	Title               string `json:"title"`
}

// CallMissed is the data of TypeCallMissed: a missed call, with what a worker
// needs at the top level and the full record beside it.
type CallMissed struct {
	Extension    ExtensionRef `json:"extension"`
	PBX          string       `json:"pbx"`
	CDRID        int          `json:"cdr_id"`
	UniqueID     string       `json:"uniqueid"`
	CallerNumber string       `json:"caller_number"`
	CallerID     string       `json:"caller_id"`
	CLID         string       `json:"clid"`
	Time         time.Time    `json:"time"` // the record's timestamp
	Timestamp    int64        `json:"timestamp"`
	Disposition  string       `json:"disposition"`
	CallType     string       `json:"call_type"`
	Record       CDR          `json:"record"`
}

// The states of the bridge's session for an extension.
const (
	StateConnecting   = "connecting"
	StateOnline       = "online"
	StateReconnecting = "reconnecting"
	StateOffline      = "offline"
	StateStopped      = "stopped"
)

// SessionState is the data of TypeSessionState: the session of the extension
// changed state. Previous is empty for the first state of a session.
type SessionState struct {
	Extension ExtensionRef `json:"extension"`
	PBX       string       `json:"pbx"`
	State     string       `json:"state"`
	Previous  string       `json:"previous"`
	Reason    string       `json:"reason,omitempty"`
	Code      int          `json:"code,omitempty"` // an SDK result code (negative)
}

// The names of the SDK's runtime errors, with their codes in comments.
const (
	RuntimeLinkusDisabled    = "LINKUS_DISABLED"     // -106
	RuntimeLoggedInElsewhere = "LOGGED_IN_ELSEWHERE" // -107
	RuntimeExtensionDeleted  = "EXTENSION_DELETED"   // -108
	RuntimeReLogin           = "RE_LOGIN"            // -109
	RuntimeSDKPlanDisabled   = "SDK_PLAN_DISABLED"   // -110
)

// What the bridge does after a runtime error.
const (
	ActionStopped = "stopped" // the extension is given up until an operator acts
	ActionRelogin = "relogin" // the bridge logs in again, with backoff
)

// RuntimeError is the data of TypeRuntimeError: the PBX ended the session
// with one of the SDK's runtime errors, and Action says what the bridge does
// about it (ActionStopped or ActionRelogin).
type RuntimeError struct {
	Extension ExtensionRef `json:"extension"`
	PBX       string       `json:"pbx"`
	Code      int          `json:"code"`
	Name      string       `json:"name"`
	Message   string       `json:"message"`
	Action    string       `json:"action"`
}

// Markers that stand in a notification's msg (or one of its fields) for
// what the bridge removed before publishing.
const (
	// RemovedCredential replaces the value of every field whose name says
	// it is a credential (password, passwd, pwd, secret, token, key, sign,
	// auth, ha1, in any case, at any depth): no credential from the PBX ever
	// reaches NATS.
	RemovedCredential = "[removed: credential]"
	// RemovedTooLarge is the Removed of the msg that replaces one too large
	// for the NATS server's max_payload.
	RemovedTooLarge = "too_large"
)

// RemovedMsg is the msg of a Notify whose msg was removed: why, and the size
// in bytes of the msg as the PBX sent it.
type RemovedMsg struct {
	Removed string `json:"removed"`
	Size    int    `json:"size"`
}

// Notify is the data of TypeNotify: a PBX notification without an event of
// its own, passed on with its decoded msg. A nil Msg is sent as null.
type Notify struct {
	Extension        ExtensionRef    `json:"extension"`
	PBX              string          `json:"pbx"`
	NotificationType int             `json:"notification_type"`
	Name             string          `json:"name"` // e.g. "record_status"
	Msg              json.RawMessage `json:"msg"`
}

func (CDRChanged) schemaType() string   { return TypeCDRChanged }
func (CDRCreated) schemaType() string   { return TypeCDRCreated }
func (CallMissed) schemaType() string   { return TypeCallMissed }
func (SessionState) schemaType() string { return TypeSessionState }
func (RuntimeError) schemaType() string { return TypeRuntimeError }
func (Notify) schemaType() string       { return TypeNotify }
