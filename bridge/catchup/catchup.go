// Package catchup publishes, oldest first and exactly once, the CDR records
// of one extension that are newer than its cursor: one scan of the PBX's
// list newest first (scan.go), rounds for a gap deeper than one scan, the
// cursor in a revision-checked store (cursor.go), and the match of
// notifications against what a catch-up under way published (coalesce.go).
// It knows nothing of NATS subjects or events: its owner publishes.
package catchup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
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

// Metrics is told what catch-up did.
type Metrics interface {
	// CaughtUp: a catch-up published records, the newest lag behind the PBX's newest.
	CaughtUp(records int, lag time.Duration)
	// CursorReset: the PBX's history was reset under the cursor.
	CursorReset()
	// Anomaly: a misbehaviour of the PBX met by a scan (scan.go's reasons).
	Anomaly(reason string)
}

// PublishFunc publishes records oldest first, pipelined, and calls
// progress(n) when the first n records' events are all dealt with, at least
// every so many records; it returns how many records that is.
type PublishFunc func(ctx context.Context, recs []pbx.CDR, progress func(n int) error) (int, error)

// Catcher catches one extension up. It is used by one goroutine at a time
// (the extension's supervisor): after the first read its copy of the
// cursor is the truth, since that goroutine is the cursor's only writer.
type Catcher struct {
	Ext        string // the extension number
	Key        string // its cursor's key in Store
	Store      Store
	Publish    PublishFunc
	PageSize   *PageSize // shared by the extensions of one PBX
	MaxPages   int       // bound of one scan (MaxScanPages when 0)
	FirstStart FirstStart
	Now        func() time.Time
	Log        *slog.Logger
	Metrics    Metrics

	cursor *Cursor // the extension's copy, once read
	rev    uint64  // its revision in Store
	co     coalescer
}

// Cursor returns the extension's copy of its cursor, once read.
func (c *Catcher) Cursor() (Cursor, bool) {
	if c.cursor == nil {
		return Cursor{}, false
	}
	return *c.cursor, true
}

// Notified tells a 20049 with the timestamp ts, and reports whether the
// last catch-up published its record already (see coalescer): no catch-up
// is due for it.
func (c *Catcher) Notified(ts int64) bool { return c.co.notified(ts) }

// Gapped tells that a catch-up is due for another reason than a
// notification: a socket (re)opened, an overflow, the periodic poll.
func (c *Catcher) Gapped() { c.co.gapped() }

// Run publishes, oldest first, every record newer than the extension's
// cursor, advancing the cursor as the publisher reports progress. It
// returns the number of records published.
//
// One scan newest first finds what is new (see scanner); in the common case
// of one new call, its first page already reaches the cursor and is the
// only query. What it found goes to Publish (pipelined, the cursor saved
// at each progress report). A gap larger than scanKeep is published in
// rounds, oldest first; one deeper than a scan's page limit is read on
// from where the scan stopped, and published oldest first all the same.
// What a misbehaving PBX does to a scan is logged and counted (Metrics.
// Anomaly); what was read is published all the same.
func (c *Catcher) Run(ctx context.Context, src Source, loginTime time.Time) (int, error) {
	c.co.begin()
	defer c.co.end()
	published := 0
	reset, startOver := false, false
	var from resume // where the next scan starts: page 1, or deeper (a gap past the page limit)
	for round := 1; ; round++ {
		if round > maxCatchupRounds {
			return published, fmt.Errorf("catch-up published %d records in %d rounds and the PBX still has more: going on after a pause", published, maxCatchupRounds)
		}
		cur, first, err := c.loadCursor(ctx)
		if err != nil {
			return published, err
		}
		if startOver {
			first, startOver = true, false
		}
		old := func(r pbx.CDR, _ int) bool { return r.ID <= cur.ID }
		if first {
			old = c.firstStart(loginTime)
		}
		sc := c.scanner(src)
		res, err := sc.scan(ctx, old, from)
		if err != nil {
			return published, err
		}
		if !res.complete {
			// Cut at the page limit before the cursor: everything read is
			// newer than the part not read yet, so nothing is published
			// (that would move the cursor past unread records). The next
			// round reads on from where this one stopped.
			c.Log.Info("catch-up: the gap is deeper than one scan reaches; reading on", "from_page", res.lastPage, "cursor_id", cur.ID)
			from = resume{page: res.lastPage + 1, below: res.minID}
			continue
		}
		if from.page > 1 && len(res.fresh) == 0 {
			// Nothing above the cursor from this page on: the records
			// still unpublished are on earlier pages.
			from = resume{page: max(1, from.page-stride(sc))}
			continue
		}
		if !first && !reset && from.page <= 1 && res.newest.ID != 0 && res.newest.ID < cur.ID {
			// The PBX's newest record is older than what was published: its
			// history was reset (a restore, a replacement). Every new record
			// would sit below the cursor and be skipped for good; start over
			// as on a first start instead, and say so loudly.
			c.Log.Error("the PBX's newest CDR is older than the cursor: its CDR history was reset; starting over with the first-start policy",
				"cursor_id", cur.ID, "pbx_newest_id", res.newest.ID)
			c.Metrics.CursorReset()
			reset, startOver = true, true
			continue
		}
		if first {
			c.Log.Info("first start: cursor set", "policy", c.FirstStart.Mode, "cursor_id", res.base.ID, "new_records", len(res.fresh))
			if err := c.saveCursor(ctx, toCursor(res.base)); err != nil {
				return published, err
			}
		}
		n, err := c.publishRecords(ctx, res.fresh)
		c.co.published(res.fresh[:n])
		published += n
		if err != nil {
			return published, err
		}
		switch {
		case from.page > 1:
			// A pass below page 1 published the oldest part of the gap; the
			// newer records are on the pages above the newest it published.
			from = resume{page: max(1, res.topPage-stride(sc))}
		case !res.more:
			lag := time.Duration(res.newest.Timestamp-c.cursor.Timestamp) * time.Second
			c.Metrics.CaughtUp(published, max(lag, 0))
			return published, nil
		}
	}
}

// stride is how many pages a pass below page 1 starts above the newest
// record the last one published: about one pass's worth of records (keep),
// and fewer pages than one scan may read, so that it reaches the cursor.
func stride(sc *scanner) int {
	return max(1, min(sc.keep/sc.size.get(), sc.maxPages/2))
}

// maxCatchupRounds bounds the rounds of one catch-up (scanKeep records
// each): a million records, then the supervisor's backoff before the next.
const maxCatchupRounds = 100

// scanner returns the scanner of this extension's CDR list.
func (c *Catcher) scanner(src Source) *scanner {
	maxPages := c.MaxPages
	if maxPages <= 0 {
		maxPages = MaxScanPages
	}
	return &scanner{src: src, size: c.PageSize, keep: scanKeep, maxPages: maxPages,
		anomaly: func(reason string, attrs ...any) {
			c.Metrics.Anomaly(reason)
			c.Log.Warn("catch-up: the PBX misbehaves", append([]any{"anomaly", reason}, attrs...)...)
		}}
}

// firstStart returns the boundary of an extension without a cursor, by the
// FirstStart policy: "none" takes every record older than the login for
// history (by the PBX's clock; a call whose notification came before the
// first catch-up is not history), "last" keeps the newest Last records and
// "since" those of the last Since.
func (c *Catcher) firstStart(loginTime time.Time) func(pbx.CDR, int) bool {
	fs := c.FirstStart
	switch fs.Mode {
	case "last":
		return func(_ pbx.CDR, i int) bool { return i >= fs.Last }
	case "since":
		from := c.Now().Add(-fs.Since).Unix()
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
func (c *Catcher) loadCursor(ctx context.Context) (cur Cursor, first bool, err error) {
	if c.cursor != nil {
		return *c.cursor, false, nil
	}
	cur, rev, ok, err := c.Store.Get(ctx, c.Key, c.Ext)
	if err != nil {
		return cur, false, err
	}
	c.rev = rev
	if !ok {
		return cur, true, nil
	}
	c.cursor = &cur
	return cur, false, nil
}

// saveCursor stores the cursor and keeps it as the extension's copy. A
// write refused because the cursor moved under it (another replica owns
// the extension) drops the copy, so that the next catch-up reads it again.
func (c *Catcher) saveCursor(ctx context.Context, cur Cursor) error {
	rev, err := c.Store.Put(ctx, c.Key, cur, c.rev)
	if errors.Is(err, ErrCursorMoved) {
		c.Log.Error("cursor not saved: it was written by someone else since it was read", "err", err)
		c.cursor, c.rev = nil, 0
	}
	if err != nil {
		return err
	}
	c.cursor, c.rev = &cur, rev
	return nil
}

func toCursor(r pbx.CDR) Cursor {
	return Cursor{ID: r.ID, UniqueID: r.UniqueID, Timestamp: r.Timestamp}
}

// publishRecords publishes records (oldest first) through Publish, and
// saves the cursor as the publisher reports progress and at the last record
// whose events are all dealt with. It returns how many records that is.
func (c *Catcher) publishRecords(ctx context.Context, recs []pbx.CDR) (int, error) {
	saved := 0
	save := func(n int) error {
		if n <= saved {
			return nil
		}
		if err := c.saveCursor(ctx, toCursor(recs[n-1])); err != nil {
			return err
		}
		saved = n
		return nil
	}
	n, err := c.Publish(ctx, recs, save)
	if err != nil {
		c.Log.Warn("records not published", "published", n, "records", len(recs), "err", err)
	}
	if serr := save(n); serr != nil && err == nil {
		err = serr
	}
	return n, err
}
