package bridge

import (
	"context"
	"errors"
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

// catchUp publishes, oldest first, every record newer than the extension's
// cursor, advancing the cursor after each acknowledged batch. It returns
// the number of records published.
//
// One scan newest first finds what is new (see scanner); in the common case
// of one new call, its first page already reaches the cursor and is the
// only query. What it found is published in batches of catchupBatch
// records, pipelined (publishInOrder), and the cursor saved once per batch.
// A gap larger than scanKeep is published in rounds, oldest first. What a misbehaving PBX does to a scan is logged and counted
// (pbx_bridge_catchup_anomalies_total); what was read is published all the
// same, and a scan cut short by maxScanPages is an error, so the supervisor
// tries again with backoff.
func (x *extension) catchUp(ctx context.Context, src cdrSource, loginTime time.Time) (int, error) {
	published := 0
	reset, startOver := false, false
	var from resume // where the next scan starts: page 1, or deeper (a gap past the page limit)
	for round := 1; ; round++ {
		if round > maxCatchupRounds {
			return published, fmt.Errorf("catch-up published %d records in %d rounds and the PBX still has more: going on after a pause", published, maxCatchupRounds)
		}
		cur, first, err := x.loadCursor(ctx)
		if err != nil {
			return published, err
		}
		if startOver {
			first, startOver = true, false
		}
		old := func(r pbx.CDR, _ int) bool { return r.ID <= cur.ID }
		if first {
			old = x.firstStart(loginTime)
		}
		sc := x.scanner(src)
		res, err := sc.scan(ctx, old, from)
		if err != nil {
			return published, err
		}
		if !res.complete {
			// Cut at the page limit before the cursor: everything read is
			// newer than the part not read yet, so nothing is published
			// (that would move the cursor past unread records). The next
			// round reads on from where this one stopped.
			x.log.Info("catch-up: the gap is deeper than one scan reaches; reading on", "from_page", res.lastPage, "cursor_id", cur.ID)
			from = resume{page: res.lastPage + 1, below: res.minID}
			continue
		}
		if from.page > 1 && len(res.fresh) == 0 {
			// Nothing above the cursor from this page on: the records
			// still unpublished are on earlier pages.
			from = resume{page: max(1, from.page-x.stride(sc))}
			continue
		}
		if !first && !reset && from.page <= 1 && res.newest.ID != 0 && res.newest.ID < cur.ID {
			// The PBX's newest record is older than what was published: its
			// history was reset (a restore, a replacement). Every new record
			// would sit below the cursor and be skipped for good; start over
			// as on a first start instead, and say so loudly.
			x.log.Error("the PBX's newest CDR is older than the cursor: its CDR history was reset; starting over with the first-start policy",
				"cursor_id", cur.ID, "pbx_newest_id", res.newest.ID)
			x.b.metrics.cursorReset(x.number)
			reset, startOver = true, true
			continue
		}
		if first {
			x.log.Info("first start: cursor set", "policy", x.b.cfg.FirstStart.Mode, "cursor_id", res.base.ID, "new_records", len(res.fresh))
			if err := x.saveCursor(ctx, toCursor(res.base)); err != nil {
				return published, err
			}
		}
		n, err := x.publishRecords(ctx, res.fresh)
		x.co.published(res.fresh[:n])
		published += n
		if err != nil {
			return published, err
		}
		switch {
		case from.page > 1:
			// A pass below page 1 published the oldest part of the gap; the
			// newer records are on the pages above the newest it published.
			from = resume{page: max(1, res.topPage-x.stride(sc))}
		case !res.more:
			lag := time.Duration(res.newest.Timestamp-x.cursor.Timestamp) * time.Second
			x.b.metrics.catchup(x.number, published, max(lag, 0))
			return published, nil
		}
	}
}

// stride is how many pages a pass below page 1 starts above the newest
// record the last one published: about one pass's worth of records (keep),
// and fewer pages than one scan may read, so that it reaches the cursor.
func (x *extension) stride(sc *scanner) int {
	return max(1, min(sc.keep/sc.size.get(), sc.maxPages/2))
}

// maxCatchupRounds bounds the rounds of one catch-up (scanKeep records
// each): a million records, then the supervisor's backoff before the next.
const maxCatchupRounds = 100

// scanner returns the scanner of this extension's CDR list.
func (x *extension) scanner(src cdrSource) *scanner {
	return &scanner{src: src, size: &x.b.pageSize, keep: scanKeep, maxPages: x.b.cfg.CatchupMaxPages,
		anomaly: func(reason string, attrs ...any) {
			x.b.metrics.catchupAnomaly(reason)
			x.log.Warn("catch-up: the PBX misbehaves", append([]any{"anomaly", reason}, attrs...)...)
		}}
}

// firstStart returns the boundary of an extension without a cursor, by the
// FirstStart policy: "none" takes every record older than the login for
// history (by the PBX's clock; a call whose notification came before the
// first catch-up is not history), "last" keeps the newest Last records and
// "since" those of the last Since.
func (x *extension) firstStart(loginTime time.Time) func(pbx.CDR, int) bool {
	fs := x.b.cfg.FirstStart
	switch fs.Mode {
	case "last":
		return func(_ pbx.CDR, i int) bool { return i >= fs.Last }
	case "since":
		from := x.b.cfg.now().Add(-fs.Since).Unix()
		return func(r pbx.CDR, _ int) bool { return r.Timestamp < from }
	}
	login := loginTime.Unix()
	// A PBX whose clock or timestamps are off must not make "from now on"
	// publish its history: only the first page can be newer than a login
	// that happened a moment ago.
	return func(r pbx.CDR, i int) bool { return r.Timestamp < login || i >= pbx.MaxCDRSize }
}

// loadCursor returns the extension's cursor, and first = true when it has
// none yet (its first start).
//
// The store is read once per run of the bridge: this extension's
// supervisor is the cursor's only writer, so after that the copy it keeps
// is the truth, and a catch-up with nothing new costs one PBX query and no
// NATS round trip.
func (x *extension) loadCursor(ctx context.Context) (cur cursor, first bool, err error) {
	if x.cursor != nil {
		return *x.cursor, false, nil
	}
	cur, rev, ok, err := x.b.cursors.get(ctx, x.cursorKey, x.number)
	if err != nil {
		return cur, false, err
	}
	x.cursorRev = rev
	if !ok {
		return cur, true, nil
	}
	x.cursor = &cur
	return cur, false, nil
}

// saveCursor stores the cursor and keeps it as the extension's copy. A
// write refused because the cursor moved under it (another replica owns
// the extension) drops the copy, so that the next catch-up reads it again.
func (x *extension) saveCursor(ctx context.Context, c cursor) error {
	rev, err := x.b.cursors.put(ctx, x.cursorKey, c, x.cursorRev)
	if errors.Is(err, errCursorMoved) {
		x.log.Error("cursor not saved: it was written by someone else since it was read", "err", err)
		x.cursor, x.cursorRev = nil, 0
	}
	if err != nil {
		return err
	}
	x.cursor, x.cursorRev = &c, rev
	return nil
}

func toCursor(r pbx.CDR) cursor {
	return cursor{ID: r.ID, UniqueID: r.UniqueID, Timestamp: r.Timestamp}
}

// catchupBatch is the number of records published between two cursor
// writes. The stream's last cdr.created says how far the publishes got
// should the bridge stop before its cursor write (kvCursors), so the batch
// only bounds the work a crash sends again, and the KV writes: one per
// batch rather than one per record.
const catchupBatch = 500

// publishRecords publishes records (oldest first), pipelined
// (publishInOrder): call.missed (for a missed call) and then cdr.created of
// each, in that order, and saves the cursor every catchupBatch records and
// at the last record whose events are all dealt with. It returns how many
// records that is. Both ids derive from the PBX and the record, so a replay
// carries the same ids and JetStream drops it as a duplicate.
//
// cdr.created goes last on purpose: the extension's last cdr.created in the
// stream is one of the cursor's sources (kvCursors), so it must mean that
// every event of its record and of the records before it was stored;
// publishInOrder keeps that under failures too. A crash between the two
// publishes republishes call.missed (same id) rather than losing it.
//
// An event too large for the NATS server is dropped with an error and
// pbx_bridge_events_dropped_total and counts as dealt with, as in publish:
// retrying what can never succeed would wedge the extension.
func (x *extension) publishRecords(ctx context.Context, recs []pbx.CDR) (int, error) {
	info := x.extInfo()
	now := x.b.cfg.now()
	saved := 0
	save := func(n int) error {
		if n <= saved {
			return nil
		}
		if err := x.saveCursor(ctx, toCursor(recs[n-1])); err != nil {
			return err
		}
		saved = n
		return nil
	}
	n, err := x.b.pub.publishInOrder(ctx, orderedBatch{
		n:        len(recs),
		events:   func(i int) ([]outEvent, error) { return x.recordEvents(info, recs[i], now) },
		dropped:  x.dropTooLarge,
		progress: save,
		every:    catchupBatch,
	})
	if err != nil {
		x.log.Warn("records not published", "published", n, "records", len(recs), "err", err)
	}
	if serr := save(n); serr != nil && err == nil {
		err = serr
	}
	return n, err
}

// recordEvents builds a record's events in publish order, without those
// too large to ever be published (fits).
func (x *extension) recordEvents(info pbx.Extension, r pbx.CDR, now time.Time) ([]outEvent, error) {
	evs := make([]outEvent, 0, 2)
	if r.Missed() {
		ev, err := x.f.callMissed(info, r, now)
		if err != nil {
			x.log.Error("event not built", "err", err)
			return nil, fmt.Errorf("record %d not published: %w", r.ID, err)
		}
		if ev, ok := x.fits(ev); ok {
			evs = append(evs, ev)
		}
	}
	ev, err := x.f.cdrCreated(info, r, now)
	if err != nil {
		x.log.Error("event not built", "err", err)
		return nil, fmt.Errorf("record %d not published: %w", r.ID, err)
	}
	if ev, ok := x.fits(ev); ok {
		evs = append(evs, ev)
	}
	return evs, nil
}

// fits applies the size rule to ev before it goes out (publish and
// catch-up alike): an event
// larger than the NATS server's max_payload is shrunk if it can be, and
// dropped (false: with an error and the metric) if it cannot.
func (x *extension) fits(ev outEvent) (outEvent, bool) {
	limit := x.b.nc.MaxPayload()
	if limit <= 0 || int64(ev.wireSize()) <= limit {
		return ev, true
	}
	if ev.smaller != nil {
		size := ev.wireSize()
		small, err := ev.smaller()
		if err == nil && int64(small.wireSize()) <= limit {
			x.log.Warn("event larger than the NATS server's max_payload: its content was replaced by a marker",
				"subject", ev.subject, "size", size, "max_payload", limit)
			return small, true
		}
	}
	x.dropTooLarge(ev, errTooLarge)
	return ev, false
}

// dropTooLarge counts and logs an event that can never be published.
func (x *extension) dropTooLarge(ev outEvent, err error) {
	x.b.metrics.eventDropped(ev.typ, "too_large")
	x.log.Error("event dropped: larger than the NATS server's max_payload", "subject", ev.subject,
		"type", ev.typ, "size", ev.wireSize(), "max_payload", x.b.nc.MaxPayload(), "err", err)
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
