package pbx

import (
	"encoding/json"

	"github.com/pbx-bridge/pbx-bridge/schema"
)

// Product is the answer of pbx/getproduct.
type Product struct {
	BaseOEMID    *int   `json:"base_oem_id"`
	CompanyName  string `json:"company_name"`
	DispDevName  string `json:"disp_dev_name"`
	OEMID        int    `json:"oem_id"`
	PlatformName string `json:"platform_name"`
	ProductName  string `json:"product_name"`
	ProductType  string `json:"product_type"`
	Version      string `json:"version"`
}

// PlanMode is "cn" when base_oem_id is 1 and "en" otherwise.
func (p Product) PlanMode() string {
	if p.BaseOEMID != nil && *p.BaseOEMID == 1 {
		return "cn"
	}
	return "en"
}

// Cloud reports whether the PBX is a cloud PBX (platform_name "p_cloudpbx").
func (p Product) Cloud() bool { return p.PlatformName == "p_cloudpbx" }

// Extension is who a session is logged in as (extension/getpersonal).
type Extension struct {
	ID     int    `json:"id"`
	Number string `json:"number"`
	Name   string `json:"caller_id_name"`
}

// CDRStatus is the SDK's call status filter and a record's status.
type CDRStatus = schema.CDRStatus

// The SDK's status values.
const (
	StatusAll      = schema.CDRStatusAll
	StatusIncoming = schema.CDRStatusIncoming
	StatusMissed   = schema.CDRStatusMissed
	StatusOutgoing = schema.CDRStatusOutgoing
)

// CDRQuery holds the SDK's cdrQuery parameters. Zero values take the SDK's
// defaults (page 1, size 20, sort by time, descending, all calls, no filter).
type CDRQuery struct {
	Page    int       `json:"page,omitempty"`
	Size    int       `json:"size,omitempty"`
	Status  CDRStatus `json:"status,omitempty"`
	SortBy  string    `json:"sortBy,omitempty"`  // "time" or "id"
	OrderBy string    `json:"orderBy,omitempty"` // "desc" or "asc"
	Filter  *string   `json:"filter,omitempty"`  // a number to match; nil = none
}

// Defaults for CDRQuery, as the SDK has them.
const (
	DefaultCDRPage    = 1
	DefaultCDRSize    = 20
	DefaultCDRSortBy  = "time"
	DefaultCDROrderBy = "desc"
	MaxCDRSize        = 100
)

// CDR is one record of cdr/searchpersonal, with every field of the SDK's
// page: the one call record type (schema.CDR).
type CDR = schema.CDR

// CDRExtension is the extension block inside a CDR record.
type CDRExtension = schema.CDRExtension

// CDRResult is the PBX's answer to a CDR query, as the SDK returns it.
type CDRResult struct {
	ErrCode     int    `json:"errcode"`
	ErrMsg      string `json:"errmsg"`
	Records     []CDR  `json:"personal_cdr_list"`
	TotalNumber int    `json:"total_number"`
}

// PersonalCDR is the summary inside a 20049 notification.
type PersonalCDR struct {
	Date         string `json:"date"`
	Time         string `json:"time"`
	Timestamp    int64  `json:"timestamp"`
	Number       string `json:"number"`
	TalkDuration int    `json:"talk_duration"`
}

// Notification types of the subscribe socket.
const (
	TypeLogin             = 10000
	TypeDesktopClient     = 20013
	TypeExtensionDeleted  = 20007
	TypeRecordFeatureCode = 20008
	TypeReLogin           = 20010
	TypeWebClient         = 20015
	TypeRecordPermission  = 20047
	TypeRecordStatus      = 20048
	TypeCDRChanged        = 20049
	TypeLicense           = 20053
	TypeNATFQDN           = 20065
	TypeSIPRegistration   = 20066
	TypeInternalClient    = 20082
	TypeHotStandby        = 20104
	TypeSDKPlan           = 20153
	TypeReLogin2          = 20154
)

// Event is what a Session delivers, in socket order: *CDRChanged, *Notice,
// *SocketState or *Overflow.
type Event interface{ isEvent() }

// CDRChanged is a 20049 notification (the SDK's cdrNotifyData).
type CDRChanged struct {
	ExtNum      string      `json:"ext_num"`
	PersonalCDR PersonalCDR `json:"personal_cdr"`
}

// Notice is any other notification: its type and its decoded msg.
type Notice struct {
	Type int
	Msg  json.RawMessage // the msg string, decoded once more; valid JSON, credential values replaced (RedactCredentialFields)
}

// SocketState reports the subscribe socket going up (topics sent) or down.
// Every Up after the first marks a gap: notifications may have been missed.
type SocketState struct {
	Up        bool
	Reconnect bool  // Up after a previous Up: a gap to catch up on
	Err       error // why it went down (redacted); nil when Up
	// Resubscribed marks an Up (with Reconnect) on the same socket: the PBX
	// asked for the topic list again (errcode -3, or a 20104 hot-standby
	// switch-over) and got it. Notifications may have been missed: catch
	// up as after a reconnect.
	Resubscribed bool
}

// Overflow says the consumer was too slow and Dropped notifications were
// thrown away since the last delivered event; a gap to catch up on.
type Overflow struct{ Dropped int }

func (*CDRChanged) isEvent()  {}
func (*Notice) isEvent()      {}
func (*SocketState) isEvent() {}
func (*Overflow) isEvent()    {}

// PersonalGlobal is the answer of extension/getpersonalglobal: the PBX-wide
// settings a client of this extension sees.
type PersonalGlobal struct {
	EnableNATFQDN     int    `json:"enable_nat_fqdn"`
	FQDNDomain        string `json:"fqdn_domain"`
	CloudDomain       string `json:"cloud_domain"`
	TurnPort          int    `json:"turn_port"`
	RecordFeatureCode string `json:"record_feature_code"`
	// EnbInternalClient must be 1 in the "cn" plan mode, else Linkus is
	// disabled (-106).
	EnbInternalClient int `json:"enb_internal_client"`
}

// License is the answer of licenseservice/get: the PBX's feature flags.
type License struct {
	SubscribePlanList []LicensePlan `json:"subscribe_plan_list"`
}

// LicensePlan is one entry of a License's subscribe_plan_list.
type LicensePlan struct {
	ServiceList []LicenseService `json:"service_list"`
}

// LicenseService is one licensed service ("fqdn", "video") and its status.
type LicenseService struct {
	ServiceName string `json:"service_name"`
	Status      int    `json:"status"`
}

// Service returns the status of the named service in the first plan that
// lists it, and false if no plan does.
func (l License) Service(name string) (status int, ok bool) {
	for _, p := range l.SubscribePlanList {
		for _, s := range p.ServiceList {
			if s.ServiceName == name {
				return s.Status, true
			}
		}
	}
	return 0, false
}

// Personal is the "extension" object of extension/getpersonal: who the
// session is and which Linkus clients the extension may use.
type Personal struct {
	Extension
	// EnbWebClient must be 1 for the WebClient user agent in the "en" plan
	// mode, else Linkus is disabled (-106).
	EnbWebClient int `json:"enb_web_client"`
	// EnbDesktopClient is the same for the WebPC user agent.
	EnbDesktopClient        int `json:"enb_desktop_client"`
	EnbCtlRecord            int `json:"enb_ctl_record"`
	EnbWebClientCallWaiting int `json:"enb_web_client_call_waiting"`
}
