package schema

import (
	"encoding/json"
	"time"
)

// CDRQueryRequest is the body of TypeCDRQueryRequest, a request to
// <prefix>.<ext>.cdr.query: the SDK's cdrQuery parameters. Zero values are
// left out and mean the defaults: page 1, size 20, all calls, sort by time,
// descending, no filter.
type CDRQueryRequest struct {
	Page    int     `json:"page,omitempty"`
	Size    int     `json:"size,omitempty"`    // 1..100
	Status  int     `json:"status,omitempty"`  // 0 all, 1 incoming, 2 missed, 3 outgoing
	SortBy  string  `json:"sortBy,omitempty"`  // "time" or "id"
	OrderBy string  `json:"orderBy,omitempty"` // "desc" or "asc"
	Filter  *string `json:"filter,omitempty"`  // a number to match
}

// CDRQueryResult is the body of TypeCDRQueryResult, the reply to a CDR query:
// the PBX's answer as the SDK returns it.
type CDRQueryResult struct {
	ErrCode     int    `json:"errcode"`
	ErrMsg      string `json:"errmsg"`
	Records     []CDR  `json:"personal_cdr_list"`
	TotalNumber int    `json:"total_number"`
}

// MarshalJSON sends a nil Records as an empty list: the schema has an array,
// never null.
func (r CDRQueryResult) MarshalJSON() ([]byte, error) {
	type plain CDRQueryResult
	if r.Records == nil {
		r.Records = []CDR{}
	}
	return json.Marshal(plain(r))
}

// Info is the body of TypeInfo, the reply to <prefix>.<ext>.info.
type Info struct {
	Extension ExtensionRef `json:"extension"`
	PBX       string       `json:"pbx"`
	State     string       `json:"state"` // one of the State constants
	Since     time.Time    `json:"since"` // when the session entered State
	// Replica names the fleet replica that owns the extension (empty
	// outside a fleet).
	Replica string `json:"replica,omitempty"`
}

// FleetStatus is the body of TypeFleetStatus, the reply to
// <prefix>.fleet.status: the fleet as the answering replica sees it.
type FleetStatus struct {
	Replica  string         `json:"replica"`  // the replica that answered
	Replicas []FleetReplica `json:"replicas"` // every live replica, by name
	Unowned  []string       `json:"unowned"`  // extensions no replica owns now (changing hands)
	// Leader is the replica holding the OpenAPI leader lease: it reads the
	// extension list and holds the event socket for the fleet. Absent
	// when no replica holds it (no OpenAPI duties, or changing hands).
	Leader string `json:"leader,omitempty"`
}

// FleetReplica is one live replica of a fleet and what it owns.
type FleetReplica struct {
	Replica    string    `json:"replica"`
	Heartbeat  time.Time `json:"heartbeat"`  // its last heartbeat
	Extensions []string  `json:"extensions"` // the extensions whose lease it holds
}

// MarshalJSON sends nil lists as empty ones: the schema has arrays, never null.
func (s FleetStatus) MarshalJSON() ([]byte, error) {
	type plain FleetStatus
	if s.Replicas == nil {
		s.Replicas = []FleetReplica{}
	}
	if s.Unowned == nil {
		s.Unowned = []string{}
	}
	return json.Marshal(plain(s))
}

// The stable names of error replies, each with its code.
const (
	ErrorBadRequest  = "bad_request" // 400: the request is malformed
	ErrorNotFound    = "not_found"   // 404: no such extension here
	ErrorInternal    = "internal"    // 500
	ErrorPBX         = "pbx_error"   // 502: the PBX answered with an error or could not be reached
	ErrorUnavailable = "unavailable" // 503: the session is not online
)

// ErrorReply is the body of TypeError, the reply to a request that failed.
// Consumers branch on Error (or Code), never on Message.
type ErrorReply struct {
	Code       int    `json:"code"`
	Error      string `json:"error"`
	Message    string `json:"message"`
	PBXErrCode int    `json:"pbx_errcode,omitempty"`
	PBXErrMsg  string `json:"pbx_errmsg,omitempty"`
}

// ErrorCode returns the code that goes with a stable error name, and false
// for a name this version does not know.
func ErrorCode(name string) (int, bool) {
	switch name {
	case ErrorBadRequest:
		return 400, true
	case ErrorNotFound:
		return 404, true
	case ErrorInternal:
		return 500, true
	case ErrorPBX:
		return 502, true
	case ErrorUnavailable:
		return 503, true
	}
	return 0, false
}
