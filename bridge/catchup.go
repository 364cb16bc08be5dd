package bridge

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// FirstStart says what an extension publishes when it has no cursor yet.
type FirstStart struct {
	// Mode is "none" (default: only calls from now on), "last" (the newest
	// Last records, default 20) or "since" (records of the last Since,
	// default 24h).
	Mode  string
	Last  int
	Since time.Duration
}

// cdrSource is what catch-up needs of a session.
type cdrSource interface {
	CDRQuery(ctx context.Context, q pbx.CDRQuery) (*pbx.CDRResult, error)
}

// catchupPage is the page size of catch-up queries: the largest the SDK's
// cdrQuery allows, for the fewest requests.
const catchupPage = pbx.MaxCDRSize

func byID(page int, order string) pbx.CDRQuery {
	return pbx.CDRQuery{Page: page, Size: catchupPage, SortBy: "id", OrderBy: order}
}

// catchUp publishes, oldest first, every record newer than the extension's
// cursor, advancing the cursor after each acknowledged publish. It returns
// the number of records published.
//
// The scan is in two passes so that memory stays bounded whatever the gap:
// newest first, counting the records above the cursor (one query in the
// common case of nothing new); then oldest first from that position. In
// ascending id order a record created meanwhile lands at the end, so it
// shifts no page under the scan.
func (x *extension) catchUp(ctx context.Context, src cdrSource) (int, error) {
	cur, err := x.loadCursor(ctx, src)
	if err != nil {
		return 0, err
	}
	newer, total, newest, err := countNewer(ctx, src, cur.ID)
	if err != nil {
		return 0, err
	}
	if total > 0 && newest.ID < cur.ID {
		// The PBX's newest record is older than what was published: its
		// history was reset (a restore, a replacement). Every new record
		// would sit below the cursor and be skipped for good; start over as
		// on a first start instead, and say so loudly.
		x.log.Error("the PBX's newest CDR is older than the cursor: its CDR history was reset; starting over with the first-start policy",
			"cursor_id", cur.ID, "pbx_newest_id", newest.ID)
		x.b.metrics.cursorReset(x.cred.Username)
		if cur, err = x.firstCursor(ctx, src); err != nil {
			return 0, err
		}
		if newer, total, newest, err = countNewer(ctx, src, cur.ID); err != nil {
			return 0, err
		}
	}
	if newer == 0 {
		x.b.metrics.catchup(x.cred.Username, 0, 0)
		return 0, nil
	}
	start := total - newer // 0-based position of the first new record, ascending
	page := start/catchupPage + 1
	query := func() (*pbx.CDRResult, error) { return src.CDRQuery(ctx, byID(page, "asc")) }
	res, err := query()
	// A record removed by the PBX's retention below start moves every
	// position down: step back until the page begins at or below the cursor,
	// so that nothing is skipped.
	for err == nil && page > 1 && (len(res.Records) == 0 || res.Records[0].ID > cur.ID) {
		page--
		res, err = query()
	}
	published := 0
	for ; err == nil; res, err = query() {
		for _, r := range res.Records {
			if r.ID <= cur.ID {
				continue
			}
			if err := x.publishRecord(ctx, r); err != nil {
				return published, err
			}
			cur = cursor{ID: r.ID, UniqueID: r.UniqueID, Timestamp: r.Timestamp}
			if err := x.saveCursor(ctx, cur); err != nil {
				return published, err
			}
			published++
		}
		if len(res.Records) < catchupPage {
			break
		}
		page++
	}
	if err != nil {
		return published, err
	}
	lag := time.Duration(newest.Timestamp-cur.Timestamp) * time.Second
	if lag < 0 {
		lag = 0
	}
	x.b.metrics.catchup(x.cred.Username, published, lag)
	return published, nil
}

// countNewer pages newest first until it reaches the cursor, and returns
// how many records are above it, the PBX's total, and the newest record.
func countNewer(ctx context.Context, src cdrSource, after int) (newer, total int, newest pbx.CDR, err error) {
	for page := 1; ; page++ {
		res, err := src.CDRQuery(ctx, byID(page, "desc"))
		if err != nil {
			return 0, 0, newest, err
		}
		if page == 1 && len(res.Records) > 0 {
			newest = res.Records[0]
		}
		total = res.TotalNumber
		for _, r := range res.Records {
			if r.ID <= after {
				return newer, total, newest, nil
			}
			newer++
		}
		if len(res.Records) < catchupPage {
			return newer, total, newest, nil
		}
	}
}

// loadCursor reads the extension's cursor or, on its first start, makes one
// by the FirstStart policy and stores it.
//
// The store is read once per run of the bridge: this extension's
// supervisor is the cursor's only writer, so after that the copy it keeps
// is the truth, and a catch-up with nothing new costs one PBX query and no
// NATS round trip.
func (x *extension) loadCursor(ctx context.Context, src cdrSource) (cursor, error) {
	if x.cursor != nil {
		return *x.cursor, nil
	}
	cur, ok, err := x.b.cursors.get(ctx, x.cursorKey, x.cred.Username)
	if err != nil {
		return cur, err
	}
	if !ok {
		return x.firstCursor(ctx, src)
	}
	x.cursor = &cur
	return cur, nil
}

// saveCursor stores the cursor and keeps it as the extension's copy.
func (x *extension) saveCursor(ctx context.Context, c cursor) error {
	if err := x.b.cursors.put(ctx, x.cursorKey, c); err != nil {
		return err
	}
	x.cursor = &c
	return nil
}

// firstCursor makes and stores the cursor of an extension without one, by
// the FirstStart policy.
func (x *extension) firstCursor(ctx context.Context, src cdrSource) (cursor, error) {
	var cur cursor
	fs := x.b.cfg.FirstStart
	skip := func(r pbx.CDR, i int) bool { return true } // "none": everything up to now is history
	switch fs.Mode {
	case "last":
		skip = func(_ pbx.CDR, i int) bool { return i >= fs.Last }
	case "since":
		from := x.b.cfg.now().Add(-fs.Since).Unix()
		skip = func(r pbx.CDR, _ int) bool { return r.Timestamp < from }
	}
	i := 0
scan:
	for page := 1; ; page++ {
		res, err := src.CDRQuery(ctx, byID(page, "desc"))
		if err != nil {
			return cur, err
		}
		for _, r := range res.Records {
			if skip(r, i) {
				cur = cursor{ID: r.ID, UniqueID: r.UniqueID, Timestamp: r.Timestamp}
				break scan
			}
			i++
		}
		if len(res.Records) < catchupPage {
			break
		}
	}
	x.log.Info("first start: cursor set", "policy", fs.Mode, "cursor_id", cur.ID, "history_records", i)
	return cur, x.saveCursor(ctx, cur)
}

// publishRecord publishes call.missed (for a missed call) and then
// cdr.created. Both ids derive from the PBX and the record, so a replay
// carries the same ids and JetStream drops it as a duplicate.
//
// cdr.created goes last on purpose: the extension's last cdr.created in the
// stream is one of the cursor's sources (kvCursors), so it must mean that
// every event of its record was acknowledged. A crash between the two
// publishes republishes call.missed (same id) rather than losing it.
func (x *extension) publishRecord(ctx context.Context, r pbx.CDR) error {
	info := x.extInfo()
	var evs []func(time.Time) (outEvent, error)
	if r.Missed() {
		evs = append(evs, func(now time.Time) (outEvent, error) { return x.f.callMissed(info, r, now) })
	}
	evs = append(evs, func(now time.Time) (outEvent, error) { return x.f.cdrCreated(info, r, now) })
	for _, build := range evs {
		if !x.publish(ctx, build) {
			return fmt.Errorf("record %d not published", r.ID)
		}
	}
	return nil
}

// recordID is the identity of a CDR record on its PBX.
func (f eventFactory) recordID(kind string, r pbx.CDR) string {
	return schema.EventID(f.host, f.username, kind, strconv.Itoa(r.ID), r.UniqueID)
}

func (f eventFactory) cdrCreated(ext pbx.Extension, r pbx.CDR, _ time.Time) (outEvent, error) {
	data := schema.CDRCreated{Extension: f.ref(ext), PBX: f.host, Record: toSchemaCDR(r)}
	return f.build(f.subjects.cdrCreated(f.username), schema.TypeCDRCreated, f.recordID("cdr.created", r), recordTime(r), data)
}

func (f eventFactory) callMissed(ext pbx.Extension, r pbx.CDR, _ time.Time) (outEvent, error) {
	data := schema.CallMissed{
		Extension:    f.ref(ext),
		PBX:          f.host,
		CDRID:        r.ID,
		UniqueID:     r.UniqueID,
		CallerNumber: r.Number,
		CallerID:     r.CallerID,
		CLID:         r.CLID,
		Time:         recordTime(r),
		Timestamp:    r.Timestamp,
		Disposition:  r.Disposition,
		CallType:     r.CallType,
		Record:       toSchemaCDR(r),
	}
	return f.build(f.subjects.callMissed(f.username), schema.TypeCallMissed, f.recordID("call.missed", r), recordTime(r), data)
}

// recordTime is the call's time; the event's time too, so that a replayed
// event is byte-for-byte the same.
func recordTime(r pbx.CDR) time.Time { return time.Unix(r.Timestamp, 0).UTC() }

func toSchemaCDR(r pbx.CDR) schema.CDR {
	e := r.Extension
	return schema.CDR{
		ID: r.ID, Date: r.Date, Time: r.Time, Timestamp: r.Timestamp, Number: r.Number, NumberType: r.NumberType,
		Extension: schema.CDRExtension{
			ExtID: e.ExtID, ExtNum: e.ExtNum, CallerIDName: e.CallerIDName, Photo: e.Photo, Status: e.Status,
			PresenceStatus: e.PresenceStatus, PresenceInformation: e.PresenceInformation, FirstName: e.FirstName,
			LastName: e.LastName, EmailAddr: e.EmailAddr, MobileNumber: e.MobileNumber, EnbVM: e.EnbVM,
			VMTotalCount: e.VMTotalCount, VMUnreadCount: e.VMUnreadCount, Visable: e.Visable, IMID: e.IMID,
			OrgListInfo: e.OrgListInfo, IsFavorite: e.IsFavorite, Title: e.Title,
		},
		Status: int(r.Status), TalkDuration: r.TalkDuration, CallType: r.CallType, UniqueID: r.UniqueID,
		Disposition: r.Disposition, DContext: r.DContext, CallerID: r.CallerID, CLID: r.CLID,
	}
}
