package pbxtest_test

import (
	"cmp"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

var (
	cdrKeys = []string{"id", "date", "time", "timestamp", "number", "number_type", "extension", "status",
		"talk_duration", "call_type", "uniqueid", "disposition", "dcontext", "caller_id", "clid"}
	cdrExtensionKeys = []string{"ext_id", "ext_num", "caller_id_name", "photo", "status", "presence_status",
		"presence_information", "first_name", "last_name", "email_addr", "mobile_number", "enb_vm",
		"vm_total_count", "vm_unread_count", "visable", "im_id", "org_list_info", "is_favorite", "title"}
)

func TestCallRecords(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	alice := p.AddExtension(pbxtest.Extension{Number: "1001", Name: "Alice"})
	bob := p.AddExtension(pbxtest.Extension{Number: "1002", Name: "Bob"})
	at := time.Now().Truncate(time.Second)

	internal, err := p.Call("1001", pbxtest.Call{Kind: pbxtest.Outgoing, Peer: "1002", TalkDuration: 37, Time: at})
	if err != nil {
		t.Fatal(err)
	}
	inbound, err := p.Call("1002", pbxtest.Call{Kind: pbxtest.Incoming, Peer: "5551234", TalkDuration: 5, Time: at})
	if err != nil {
		t.Fatal(err)
	}
	missed, err := p.Call("1001", pbxtest.Call{Kind: pbxtest.Missed})
	if err != nil {
		t.Fatal(err)
	}
	busy, err := p.Call("1001", pbxtest.Call{Kind: pbxtest.Outgoing, Peer: "5550000", Disposition: "BUSY"})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		got  pbxtest.CDR
		want pbxtest.CDR
	}{
		{"internal outgoing", internal, pbxtest.CDR{ID: 1, Date: "Today", Time: at.Format("15:04:05"), Timestamp: at.Unix(),
			Number: "1002", NumberType: "extension", Status: 3, TalkDuration: 37, CallType: "Internal",
			UniqueID: fmt.Sprintf("%d.1", at.Unix()), Disposition: "ANSWERED", DContext: "DLPN_DialPlan1001",
			CallerID: "1002", CLID: `"Alice" <1001>`,
			Extension: pbxtest.CDRExtension{ExtID: bob.ID, ExtNum: "1002", CallerIDName: "Bob", PresenceStatus: "available", FirstName: "Bob"}}},
		{"inbound", inbound, pbxtest.CDR{ID: 2, Date: "Today", Time: at.Format("15:04:05"), Timestamp: at.Unix(),
			Number: "5551234", NumberType: "external", Status: 1, TalkDuration: 5, CallType: "Inbound",
			UniqueID: fmt.Sprintf("%d.2", at.Unix()), Disposition: "ANSWERED", DContext: "DLPN_DialPlan5551234",
			CallerID: "5551234", CLID: `"5551234" <5551234>`}},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, tc.got, tc.want)
		}
	}
	if missed.ID != 3 || missed.Status != 2 || missed.Disposition != "NO ANSWER" || missed.Number != "2000" || missed.TalkDuration != 0 {
		t.Errorf("missed call with defaults: %+v", missed)
	}
	if busy.Status != 3 || busy.Disposition != "BUSY" || busy.CallType != "Outbound" {
		t.Errorf("busy outbound call: %+v", busy)
	}
	if time.Since(time.Unix(missed.Timestamp, 0)) > time.Minute {
		t.Errorf("default time %v is not now", time.Unix(missed.Timestamp, 0))
	}

	if got := p.CDRs("1001"); !slices.Equal(got, []pbxtest.CDR{internal, missed, busy}) {
		t.Errorf("CDRs(1001) = %+v", got)
	}
	if got := p.CDRs("9999"); got != nil {
		t.Errorf("CDRs of an unknown extension: %v", got)
	}

	// The wire shape: every field of the SDK's documented record.
	token := p.login(alice)
	body := p.get("/api/v1.0/cdr/searchpersonal", token, nil)
	checkShape(t, "searchpersonal", body, "errcode", "errmsg", "personal_cdr_list", "total_number")
	var list struct {
		Records []map[string]any `json:"personal_cdr_list"`
	}
	remarshal(t, body, &list)
	if len(list.Records) != 3 {
		t.Fatalf("%d records, want 3", len(list.Records))
	}
	for _, r := range list.Records {
		checkShape(t, "record", r, cdrKeys...)
		ext, _ := r["extension"].(map[string]any)
		checkShape(t, "record extension", ext, cdrExtensionKeys...)
	}

	for _, tc := range []struct {
		name string
		ext  string
		call pbxtest.Call
	}{
		{"unknown extension", "9999", pbxtest.Call{}},
		{"invalid kind", "1001", pbxtest.Call{Kind: pbxtest.CallKind(7)}},
		{"missed with talk time", "1001", pbxtest.Call{Kind: pbxtest.Missed, TalkDuration: 3}},
		{"negative talk time", "1001", pbxtest.Call{TalkDuration: -1}},
		{"unknown disposition", "1001", pbxtest.Call{Disposition: "HUNG UP"}},
	} {
		if _, err := p.Call(tc.ext, tc.call); err == nil {
			t.Errorf("%s: Call succeeded", tc.name)
		}
	}
	if n := len(p.CDRs("1001")); n != 3 {
		t.Errorf("failed calls stored records: %d", n)
	}
}

func TestCallKindString(t *testing.T) {
	t.Parallel()
	for k, want := range map[pbxtest.CallKind]string{pbxtest.Incoming: "Incoming", pbxtest.Outgoing: "Outgoing", pbxtest.Missed: "Missed", 9: "CallKind(9)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(k), k.String(), want)
		}
	}
}

func TestRecordDates(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	y, m, d := time.Now().Date()
	twoDaysAgo := time.Date(y, m, d-2, 12, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		at         time.Time
		date, time string
	}{
		{time.Date(y, m, d, 0, 0, 1, 0, time.Local), "Today", "00:00:01"},
		{time.Date(y, m, d-1, 23, 59, 59, 0, time.Local), "Yesterday", "23:59:59"},
		{twoDaysAgo, twoDaysAgo.Format("01/02/2006"), "12:00:00"},
		{time.Date(2023, 8, 28, 9, 3, 0, 0, time.Local), "08/28/2023", "09:03:00"},
	} {
		c, err := p.Call("1001", pbxtest.Call{Time: tc.at, Silent: true})
		if err != nil {
			t.Fatal(err)
		}
		if c.Date != tc.date || c.Time != tc.time || c.Timestamp != tc.at.Unix() {
			t.Errorf("call at %v: date %q time %q timestamp %d, want %q %q %d", tc.at, c.Date, c.Time, c.Timestamp, tc.date, tc.time, tc.at.Unix())
		}
	}
	// The API renders the same way.
	body := p.get("/api/v1.0/cdr/searchpersonal", p.login(e), url.Values{"sort_by": {"id"}, "order_by": {"asc"}})
	var list struct {
		Records []pbxtest.CDR `json:"personal_cdr_list"`
	}
	remarshal(t, body, &list)
	if !slices.Equal(list.Records, p.CDRs("1001")) {
		t.Errorf("searchpersonal %+v\nCDRs %+v", list.Records, p.CDRs("1001"))
	}
}

// seedCDRs stores 25 calls for 1001 whose time order differs from their id
// order, and a few for 1002 that 1001 must never see.
func seedCDRs(t *testing.T, p *testPBX) []pbxtest.CDR {
	t.Helper()
	base := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	kinds := []pbxtest.CallKind{pbxtest.Incoming, pbxtest.Outgoing, pbxtest.Missed}
	var out []pbxtest.CDR
	var times []time.Time
	for i := range 25 {
		c := pbxtest.Call{Kind: kinds[i%3], Peer: fmt.Sprintf("5550%d", i%5), Time: base.Add(time.Duration(i*7%25) * time.Minute), Silent: true}
		if i == 10 {
			c.Time = times[3] // a timestamp tie, broken by id
		}
		times = append(times, c.Time)
		if c.Kind != pbxtest.Missed {
			c.TalkDuration = i
		}
		rec, err := p.Call("1001", c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
		if i%10 == 0 {
			if _, err := p.Call("1002", pbxtest.Call{Peer: "55501", Silent: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

func TestSearchPersonal(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	e := p.AddExtension(pbxtest.Extension{Number: "1001"})
	p.AddExtension(pbxtest.Extension{Number: "1002"})
	all := seedCDRs(t, p)
	token := p.login(e)

	// expect is the reference's semantics, written independently of the
	// simulator: filter, sort, page.
	expect := func(q url.Values) ([]int, int) {
		get := func(k, def string) string {
			if v := q.Get(k); v != "" {
				return v
			}
			return def
		}
		var hits []pbxtest.CDR
		for _, c := range all {
			if s := get("status", "0"); s != "0" && fmt.Sprint(c.Status) != s {
				continue
			}
			if n := q.Get("number"); n != "" && !strings.Contains(c.Number, n) {
				continue
			}
			hits = append(hits, c)
		}
		slices.SortFunc(hits, func(a, b pbxtest.CDR) int {
			r := 0
			if get("sort_by", "time") == "time" {
				r = cmp.Compare(a.Timestamp, b.Timestamp)
			}
			if r == 0 {
				r = cmp.Compare(a.ID, b.ID)
			}
			if get("order_by", "desc") == "desc" {
				r = -r
			}
			return r
		})
		var page, size int
		fmt.Sscan(get("page", "1"), &page)
		fmt.Sscan(get("page_size", "20"), &size)
		var ids []int
		for i := (page - 1) * size; i < len(hits) && i < page*size; i++ {
			ids = append(ids, hits[i].ID)
		}
		return ids, len(hits)
	}

	for _, tc := range []struct {
		name  string
		query url.Values
		want  int // records on the page
	}{
		{"defaults", nil, 20},
		{"page 2", url.Values{"page": {"2"}}, 5},
		{"past the end", url.Values{"page": {"3"}}, 0},
		{"small pages", url.Values{"page": {"4"}, "page_size": {"7"}}, 4},
		{"one per page", url.Values{"page": {"25"}, "page_size": {"1"}}, 1},
		{"all on one page", url.Values{"page_size": {"1000"}}, 25},
		{"time ascending", url.Values{"order_by": {"asc"}, "page_size": {"25"}}, 25},
		{"id descending", url.Values{"sort_by": {"id"}, "page_size": {"25"}}, 25},
		{"id ascending", url.Values{"sort_by": {"id"}, "order_by": {"asc"}, "page_size": {"10"}}, 10},
		{"status all", url.Values{"status": {"0"}}, 20},
		{"incoming", url.Values{"status": {"1"}}, 9},
		{"missed", url.Values{"status": {"2"}}, 8},
		{"outgoing", url.Values{"status": {"3"}}, 8},
		{"number exact", url.Values{"number": {"55503"}}, 5},
		{"number part", url.Values{"number": {"5550"}, "page_size": {"100"}}, 25},
		{"number none", url.Values{"number": {"777"}}, 0},
		{"empty number", url.Values{"number": {""}}, 20},
		{"number and status", url.Values{"number": {"55502"}, "status": {"3"}}, 2},
		{"number, status, paging", url.Values{"number": {"55501"}, "status": {"1"}, "page_size": {"1"}, "page": {"2"}, "sort_by": {"id"}, "order_by": {"asc"}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := p.get("/api/v1.0/cdr/searchpersonal", token, tc.query)
			checkSuccess(t, "searchpersonal", body)
			if _, isList := body["personal_cdr_list"].([]any); !isList {
				t.Fatalf("personal_cdr_list is %T, want a list (never null)", body["personal_cdr_list"])
			}
			var got struct {
				Records []pbxtest.CDR `json:"personal_cdr_list"`
				Total   int           `json:"total_number"`
			}
			remarshal(t, body, &got)
			var ids []int
			for _, r := range got.Records {
				ids = append(ids, r.ID)
			}
			wantIDs, wantTotal := expect(tc.query)
			if len(ids) != tc.want || !slices.Equal(ids, wantIDs) || got.Total != wantTotal {
				t.Errorf("ids %v total %d, want ids %v (%d) total %d", ids, got.Total, wantIDs, tc.want, wantTotal)
			}
		})
	}
}

func TestSearchPersonalRejectsBadParameters(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	token := p.login(p.AddExtension(pbxtest.Extension{Number: "1001"}))
	for name, q := range map[string]url.Values{
		"page 0":            {"page": {"0"}},
		"page negative":     {"page": {"-1"}},
		"page not a number": {"page": {"first"}},
		"page float":        {"page": {"1.0"}},
		"page empty":        {"page": {""}},
		"page twice":        {"page": {"1", "2"}},
		"page_size 0":       {"page_size": {"0"}},
		"page_size 1001":    {"page_size": {"1001"}},
		"sort_by date":      {"sort_by": {"date"}},
		"sort_by upper":     {"sort_by": {"TIME"}},
		"order_by up":       {"order_by": {"up"}},
		"status 4":          {"status": {"4"}},
		"status -1":         {"status": {"-1"}},
		"status name":       {"status": {"missed"}},
		"number twice":      {"number": {"1", "2"}},
		// Only the SDK's six parameters: a misnamed one is not ignored.
		"size (the SDK's option name)": {"size": {"10"}},
		"filter (the SDK's option)":    {"filter": {"1001"}},
		"pageSize":                     {"pageSize": {"10"}},
		"PAGE":                         {"PAGE": {"1"}},
		"access_token":                 {"access_token": {"x"}},
		"unknown with valid ones":      {"page": {"1"}, "page_size": {"20"}, "extension": {"1001"}},
		"empty name":                   {"": {"1"}},
	} {
		checkError(t, name, p.get("/api/v1.0/cdr/searchpersonal", token, q), 40002, "PARAMETER ERROR")
	}
}

func TestUniqueIDFormat(t *testing.T) {
	t.Parallel()
	p := start(t, pbxtest.Options{})
	p.AddExtension(pbxtest.Extension{Number: "1001"})
	c, err := p.Call("1001", pbxtest.Call{Silent: true})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d+\.\d+$`).MatchString(c.UniqueID) || c.UniqueID != fmt.Sprintf("%d.%d", c.Timestamp, c.ID) {
		t.Errorf("uniqueid %q, want <timestamp>.<id>", c.UniqueID)
	}
}
