package pbxtest

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pbx-bridge/pbx-bridge/schema"
)

// CallKind is the direction of a call as the extension saw it.
type CallKind int

// The kinds of call; each maps to the CDR status the PBX reports (1
// incoming, 2 missed, 3 outgoing).
const (
	Incoming CallKind = iota
	Outgoing
	Missed
)

var (
	kindNames  = [...]string{Incoming: "Incoming", Outgoing: "Outgoing", Missed: "Missed"}
	kindStatus = [...]schema.CDRStatus{Incoming: schema.CDRStatusIncoming, Outgoing: schema.CDRStatusOutgoing, Missed: schema.CDRStatusMissed}
)

// String returns the kind's name, as in the constants.
func (k CallKind) String() string {
	if k.valid() {
		return kindNames[k]
	}
	return "CallKind(" + strconv.Itoa(int(k)) + ")"
}

func (k CallKind) valid() bool { return k >= 0 && int(k) < len(kindStatus) }

// Call describes a finished call of an extension, for Server.Call.
type Call struct {
	Kind         CallKind
	Peer         string    // the other party's number; default "2000"
	TalkDuration int       // seconds; must be 0 for a missed call
	Time         time.Time // when the call was made or received; default now
	Disposition  string    // ANSWERED, NO ANSWER, BUSY, FAILED or VOICEMAIL; default NO ANSWER for missed calls, ANSWERED otherwise
	Silent       bool      // store the record but send no 20049 notification, as a lossy socket would

	live bool // the record of a live call (calls.go), whose OpenAPI events went out already
}

// CDR is a record as the simulator serves it: the one call record type
// (schema.CDR).
type CDR = schema.CDR

// CDRExtension describes the extension a CDR record's number belongs to.
type CDRExtension = schema.CDRExtension

// record is a stored CDR: its date and time are rendered when read, since a
// real PBX says "Today" relative to the query, not to the call.
type record struct {
	cdr CDR
	at  time.Time
}

func (r record) render(now time.Time) CDR {
	c := r.cdr
	at, now := r.at.Local(), now.Local()
	switch {
	case sameDay(at, now):
		c.Date = "Today"
	case sameDay(at, now.AddDate(0, 0, -1)):
		c.Date = "Yesterday"
	default:
		c.Date = at.Format("01/02/2006")
	}
	c.Time = at.Format("15:04:05")
	return c
}

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd
}

var dispositions = []string{"ANSWERED", "NO ANSWER", "BUSY", "FAILED", "VOICEMAIL"}

// Call stores a CDR record of call c for extension ext and, unless c.Silent,
// sends a 20049 notification to ext's sockets subscribed to 20049, before it
// returns. Record ids come from one server-wide increasing sequence. It fails
// for an unknown extension or an invalid call.
func (s *Server) Call(ext string, c Call) (CDR, error) {
	switch {
	case !c.Kind.valid():
		return CDR{}, fmt.Errorf("pbxtest: Call: invalid kind %v", c.Kind)
	case c.TalkDuration < 0 || c.Kind == Missed && c.TalkDuration != 0:
		return CDR{}, fmt.Errorf("pbxtest: Call: talk duration %d invalid for a %v call", c.TalkDuration, c.Kind)
	case c.Disposition != "" && !slices.Contains(dispositions, c.Disposition):
		return CDR{}, fmt.Errorf("pbxtest: Call: invalid disposition %q", c.Disposition)
	}
	if c.Peer == "" {
		c.Peer = "2000"
	}
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	if c.Disposition == "" {
		c.Disposition = "ANSWERED"
		if c.Kind == Missed {
			c.Disposition = "NO ANSWER"
		}
	}

	s.mu.Lock()
	e := s.exts[ext]
	if e == nil {
		s.mu.Unlock()
		return CDR{}, fmt.Errorf("pbxtest: Call: no extension %q", ext)
	}
	s.nextCDRID++
	rec := record{at: c.Time, cdr: CDR{
		ID:           s.nextCDRID,
		Timestamp:    c.Time.Unix(),
		Number:       c.Peer,
		NumberType:   "external",
		Status:       kindStatus[c.Kind],
		TalkDuration: c.TalkDuration,
		CallType:     "Inbound",
		UniqueID:     fmt.Sprintf("%d.%d", c.Time.Unix(), s.nextCDRID),
		Disposition:  c.Disposition,
		CallerID:     c.Peer,
	}}
	peerName := c.Peer
	if p := s.exts[c.Peer]; p != nil {
		peerName = p.Name
		rec.cdr.NumberType = "extension"
		rec.cdr.CallType = "Internal"
		rec.cdr.Extension = CDRExtension{ExtID: p.ID, ExtNum: p.Number, CallerIDName: p.Name,
			PresenceStatus: "available", FirstName: p.Name}
	} else if c.Kind == Outgoing {
		rec.cdr.CallType = "Outbound"
	}
	// The caller's dial plan and identity, as the PBX records them.
	if c.Kind == Outgoing {
		rec.cdr.DContext = "DLPN_DialPlan" + e.Number
		rec.cdr.CLID = fmt.Sprintf("%q <%s>", e.Name, e.Number)
	} else {
		rec.cdr.DContext = "DLPN_DialPlan" + c.Peer
		rec.cdr.CLID = fmt.Sprintf("%q <%s>", peerName, c.Peer)
	}
	e.cdrs = append(e.cdrs, rec)
	var socks []*socket
	if !c.Silent {
		socks = s.subscribers(ext, typeCDRChanged)
	}
	style := s.quirks.numbers
	s.mu.Unlock()

	if len(socks) > 0 {
		deliver(socks, notification(typeCDRChanged, map[string]any{
			"ext_num": ext,
			"personal_cdr": map[string]any{
				"date": "", "time": "", "timestamp": style.int(rec.cdr.Timestamp),
				"number": c.Peer, "talk_duration": style.int(int64(c.TalkDuration)),
			},
		}))
	}
	if !c.live {
		s.echoCall(ext, c)
	}
	return rec.render(time.Now()), nil
}

// CDRs returns the records of ext in the order they were stored (ascending
// id), or nil for an unknown extension.
func (s *Server) CDRs(ext string) []CDR {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.exts[ext]
	if e == nil {
		return nil
	}
	now := time.Now()
	out := make([]CDR, len(e.cdrs))
	for i, r := range e.cdrs {
		out[i] = r.render(now)
	}
	return out
}

// cdrQuery is a parsed searchpersonal request.
type cdrQuery struct {
	page, pageSize int
	sortByID, asc  bool
	status         int
	number         string
}

// cdrParams are the query parameters the SDK sends to searchpersonal.
var cdrParams = []string{"page", "page_size", "sort_by", "order_by", "status", "number"}

// parseCDRQuery applies the reference's defaults and reports false for a
// value outside them, a parameter given twice, or one the SDK does not send
// (a misnamed one would otherwise be ignored, and its query silently
// answered with the defaults).
func parseCDRQuery(values url.Values) (cdrQuery, bool) {
	for name, vs := range values {
		if len(vs) > 1 || !slices.Contains(cdrParams, name) {
			return cdrQuery{}, false
		}
	}
	q := cdrQuery{page: 1, pageSize: 20, number: values.Get("number")}
	for _, p := range []struct {
		name   string
		dst    *int
		lo, hi int
	}{{"page", &q.page, 1, 1 << 30}, {"page_size", &q.pageSize, 1, 1000}, {"status", &q.status, 0, 3}} {
		if !values.Has(p.name) {
			continue
		}
		n, err := strconv.Atoi(values.Get(p.name))
		if err != nil || n < p.lo || n > p.hi {
			return q, false
		}
		*p.dst = n
	}
	for _, p := range []struct {
		name, def, alt string
		dst            *bool
	}{{"sort_by", "time", "id", &q.sortByID}, {"order_by", "desc", "asc", &q.asc}} {
		v := values.Get(p.name)
		if values.Has(p.name) && v != p.def && v != p.alt {
			return q, false
		}
		*p.dst = v == p.alt
	}
	return q, true
}

// searchPersonal answers cdr/searchpersonal for the session's extension. The
// number filter matches a record whose number or caller_id contains it, as a
// search box does. The paging and number knobs (SetPageCap, SetTotalNumber,
// SetRepeatLastPage, SetSamePage, SetNumberStyle) apply here.
func (s *Server) searchPersonal(e *extension, _ string, r *http.Request) any {
	q, valid := parseCDRQuery(r.URL.Query())
	if !valid {
		return errParameter
	}
	// Pointers, not copies: an extension may hold many thousand records,
	// and a page query must not cost a PBX's worth of copying.
	hits := make([]*record, 0, len(e.cdrs))
	for i := range e.cdrs {
		rec := &e.cdrs[i]
		if q.status != 0 && int(rec.cdr.Status) != q.status {
			continue
		}
		if q.number != "" && !strings.Contains(rec.cdr.Number, q.number) && !strings.Contains(rec.cdr.CallerID, q.number) {
			continue
		}
		hits = append(hits, rec)
	}
	if q.sortByID {
		// The store is in id order (Call appends with increasing ids).
		if !q.asc {
			slices.Reverse(hits)
		}
	} else {
		slices.SortStableFunc(hits, func(a, b *record) int {
			c := cmp.Compare(a.cdr.Timestamp, b.cdr.Timestamp)
			if c == 0 {
				c = cmp.Compare(a.cdr.ID, b.cdr.ID)
			}
			if !q.asc {
				c = -c
			}
			return c
		})
	}
	list := []CDR{} // an empty page is [], never null
	now := time.Now()
	lo, hi := s.quirks.window(len(hits), q.page, q.pageSize)
	for _, rec := range hits[lo:hi] {
		list = append(list, rec.render(now))
	}
	total := len(hits)
	if f := s.quirks.totalNumber; f != nil {
		total = f(total)
	}
	n := s.quirks.numbers
	return ok(map[string]any{"personal_cdr_list": n.restyle(list), "total_number": n.int(int64(total))})
}

// window returns the bounds in n matching records of the page asked for,
// as the paging knobs serve it; honest paging when they are off.
func (k quirks) window(n, page, size int) (lo, hi int) {
	served, step := size, size
	if k.pageCap > 0 && k.pageCap < size {
		served = k.pageCap
		if !k.offsetByRequested {
			step = served
		}
	}
	if k.samePage {
		page = 1
	}
	lo = (page - 1) * step
	if lo >= n && k.repeatLastPage && n > 0 {
		lo = (n - 1) / step * step
	}
	if lo >= n {
		return 0, 0
	}
	return lo, min(lo+served, n)
}
