package schema

import (
	"encoding/json"
	"testing"
	"time"
)

// Realistic values, after the PBX's own examples (seed-PBX.md).
const (
	testPBX     = "pbx.example.com:8088"
	testSource  = "https://pbx.example.com:8088"
	testSubject = "1001"
)

var (
	testExt  = ExtensionRef{Number: "1001", ID: 25, Name: "Alice Chen"}
	testTime = time.Date(2023, 6, 12, 9, 21, 39, 0, time.UTC)

	testCDR = CDR{
		ID:         2546,
		Date:       "Today",
		Time:       "17:21:39",
		Timestamp:  1686561699,
		Number:     "1011",
		NumberType: "extension",
		Extension: CDRExtension{
			ExtID:          25,
			ExtNum:         "1011",
			CallerIDName:   "cwt1011",
			PresenceStatus: "available",
			FirstName:      "wt1011",
			LastName:       "c",
			IMID:           "xxxxx",
		},
		Status:       3,
		TalkDuration: 3,
		CallType:     "Internal",
		UniqueID:     "1686561699.137",
		Disposition:  DispositionAnswered,
		DContext:     "DLPN_DialPlan1010",
		CallerID:     "1011",
		CLID:         `"cwt1010" <1010>`,
	}

	testMissedCDR = CDR{
		ID:         2547,
		Date:       "Today",
		Time:       "17:25:02",
		Timestamp:  1686561902,
		Number:     "+4915112345678",
		NumberType: "external",
		Extension: CDRExtension{
			ExtID:          25,
			ExtNum:         "1001",
			CallerIDName:   "Alice Chen",
			Status:         1,
			PresenceStatus: "available",
			FirstName:      "Alice",
			LastName:       "Chen",
			EmailAddr:      "alice@example.com",
			EnbVM:          1,
			VMTotalCount:   4,
			VMUnreadCount:  1,
			IMID:           "im-1001",
			Title:          "Support",
		},
		Status:      2,
		CallType:    "Inbound",
		UniqueID:    "1686561902.141",
		Disposition: DispositionNoAnswer,
		DContext:    "DLPN_DialPlan1001",
		CallerID:    "+4915112345678",
		CLID:        `"Bob" <+4915112345678>`,
	}
)

// eventData is one value of every event data type.
var eventData = []struct {
	typ  string
	data any
}{
	{TypeCDRChanged, CDRChanged{
		Extension: testExt, PBX: testPBX, ExtNum: "1001",
		PersonalCDR: PersonalCDR{Timestamp: 1693201380, Number: "1001"},
	}},
	{TypeCDRCreated, CDRCreated{Extension: testExt, PBX: testPBX, Record: testCDR}},
	{TypeCallMissed, CallMissed{
		Extension: testExt, PBX: testPBX,
		CDRID:        testMissedCDR.ID,
		UniqueID:     testMissedCDR.UniqueID,
		CallerNumber: testMissedCDR.Number,
		CallerID:     testMissedCDR.CallerID,
		CLID:         testMissedCDR.CLID,
		Time:         time.Unix(testMissedCDR.Timestamp, 0).UTC(),
		Timestamp:    testMissedCDR.Timestamp,
		Disposition:  testMissedCDR.Disposition,
		CallType:     testMissedCDR.CallType,
		Record:       testMissedCDR,
	}},
	{TypeSessionState, SessionState{Extension: testExt, PBX: testPBX, State: StateConnecting}},
	{TypeSessionState, SessionState{
		Extension: ExtensionRef{Number: "1002", ID: 26}, PBX: "10.0.0.5",
		State: StateReconnecting, Previous: StateOnline,
		Reason: "subscribe socket closed", Code: -102,
	}},
	{TypeRuntimeError, RuntimeError{
		Extension: testExt, PBX: testPBX, Code: -107, Name: RuntimeLoggedInElsewhere,
		Message: "The account has been logged in elsewhere.", Action: ActionStopped,
	}},
	{TypeRuntimeError, RuntimeError{
		Extension: testExt, PBX: testPBX, Code: -109, Name: RuntimeReLogin,
		Message: "You need to log in again.", Action: ActionRelogin,
	}},
	{TypeNotify, Notify{
		Extension: testExt, PBX: testPBX, NotificationType: 20048, Name: "record_status",
		Msg: json.RawMessage(`{"record_status":"recording","call_feature":"record","caller_origin_number":"1001","callee_origin_number":"1011"}`),
	}},
	{TypeNotify, Notify{Extension: testExt, PBX: testPBX, NotificationType: 20053, Name: "license_changed"}},
}

// bodies is one value of every request/reply body type.
var bodies = []struct {
	typ  string
	body any
}{
	{TypeCDRQueryRequest, CDRQueryRequest{}},
	{TypeCDRQueryRequest, CDRQueryRequest{Page: 2, Size: 100, Status: 2, SortBy: "id", OrderBy: "asc", Filter: ptr("1011")}},
	{TypeCDRQueryResult, CDRQueryResult{ErrCode: 0, ErrMsg: "SUCCESS", Records: []CDR{testCDR, testMissedCDR}, TotalNumber: 63}},
	{TypeCDRQueryResult, CDRQueryResult{ErrCode: 0, ErrMsg: "SUCCESS"}},
	{TypeInfo, Info{Extension: testExt, PBX: testPBX, State: StateOnline, Since: testTime}},
	{TypeInfo, Info{Extension: testExt, PBX: testPBX, State: StateOnline, Since: testTime, Replica: "bridge-a-4711"}},
	{TypeFleetStatus, FleetStatus{Replica: "bridge-a", Replicas: []FleetReplica{{Replica: "bridge-a", Heartbeat: testTime, Extensions: []string{"1001"}}}, Unowned: []string{"1002"}}},
	{TypeFleetStatus, FleetStatus{Replica: "bridge-a"}},
	{TypeError, ErrorReply{Code: 400, Error: ErrorBadRequest, Message: "size must be 1..100"}},
	{TypeError, ErrorReply{Code: 502, Error: ErrorPBX, Message: "the PBX refused the query", PBXErrCode: 10004, PBXErrMsg: "PARAMETER ERROR"}},
	{TypeError, ErrorReply{Code: 503, Error: ErrorUnavailable, Message: "extension 1001 is reconnecting"}},
}

func ptr[T any](v T) *T { return &v }

// testEvent returns the JSON of a valid event of the given data.
func testEvent(t testing.TB, typ string, data any) []byte {
	t.Helper()
	ev, err := New(typ, testSource, testSubject, EventID(typ, testPBX, "1001", "2546"), testTime, data)
	if err != nil {
		t.Fatalf("New(%s): %v", typ, err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal %s: %v", typ, err)
	}
	return b
}

// testDocs returns a valid document of every type, by type (the envelope's
// is the CDRCreated event).
func testDocs(t *testing.T) map[string][]byte {
	t.Helper()
	docs := map[string][]byte{}
	for _, c := range eventData {
		docs[c.typ] = testEvent(t, c.typ, c.data)
	}
	for _, c := range bodies {
		b, err := json.Marshal(c.body)
		if err != nil {
			t.Fatalf("marshal %s: %v", c.typ, err)
		}
		docs[c.typ] = b
	}
	docs[TypeEnvelope] = docs[TypeCDRCreated]
	return docs
}
