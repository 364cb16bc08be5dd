package catchup

import (
	"context"
	"math"
	"slices"
	"sync/atomic"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// Bounds of one scan of an extension's CDR list. A real PBX is not our
// simulator: its totals, page sizes and pages may lie, so every loop over
// what it returns is bounded by what it actually returned.
const (
	// MaxScanPages bounds the pages one scan reads, whatever the PBX claims
	// (the default of Catcher.MaxPages): 2,000 pages of 100 are 200,000
	// records, far more than one extension's gap, and at the default 20
	// requests/s a scan that long takes 100 s.
	MaxScanPages = 2000
	// scanKeep bounds the records one scan holds in memory (about 10-15 MB).
	// A larger gap is published in rounds, oldest first, scanning again
	// after each.
	scanKeep = 10000
	// absurdTotal is the largest total_number believed; no PBX keeps a
	// hundred million CDRs of one extension.
	absurdTotal = 100_000_000
)

// Reasons of pbx_bridge_catchup_anomalies_total: what a misbehaving PBX did
// to a scan.
const (
	anomalyBadTotal     = "bad_total"     // total_number negative, unreadable or absurd
	anomalyRepeatedPage = "repeated_page" // a page brought no record not seen before
	anomalyOutOfOrder   = "out_of_order"  // a page not sorted newest first by id, or with a record twice
	anomalyBadRecord    = "bad_record"    // a record without a usable id
	anomalyPageLimit    = "page_limit"    // the scan reached maxScanPages
)

// Source is what a scan needs of a session.
type Source interface {
	CDRQuery(ctx context.Context, q pbx.CDRQuery) (*pbx.CDRResult, error)
}

// PageSize is the number of records a page of one PBX really holds: what
// catch-up asks for (the SDK's maximum) until the PBX is seen serving fewer.
// It is learned once per PBX and shared by its extensions; it only shrinks.
type PageSize struct{ n atomic.Int64 }

func (p *PageSize) get() int {
	if n := p.n.Load(); n > 0 {
		return int(n)
	}
	return pbx.MaxCDRSize
}

// learn records that the PBX serves at most n records a page.
func (p *PageSize) learn(n int) {
	for {
		cur := p.n.Load()
		if n < 1 || (cur > 0 && cur <= int64(n)) || p.n.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

func byID(page, size int, order string) pbx.CDRQuery {
	return pbx.CDRQuery{Page: page, Size: size, SortBy: "id", OrderBy: order}
}

// scanner reads one extension's CDR list newest first by id. That order is
// the stable one: the PBX's retention deletes at the old end, which moves no
// page, and a record created meanwhile pushes records to later pages, where
// the scan recognises them as seen (an id not below the smallest so far).
type scanner struct {
	src      Source
	size     *PageSize
	keep     int
	maxPages int
	// anomaly is told each misbehaviour of the PBX (once per scan and
	// reason), with what was seen.
	anomaly func(reason string, attrs ...any)
}

// scanResult is what a scan found above its boundary.
type scanResult struct {
	// fresh are the records above the boundary, oldest first: all of them,
	// or the oldest keep when more is set.
	fresh []pbx.CDR
	// more says there were more than keep records above the boundary: scan
	// again once fresh is published.
	more bool
	// base is the newest record at or below the boundary (ID 0: none seen).
	base pbx.CDR
	// newest is the PBX's newest record (ID 0: the list is empty).
	newest pbx.CDR
	// complete says the scan reached the boundary or the end of the list;
	// false when it stopped at maxScanPages.
	complete bool
	// queries is the number of pages asked for.
	queries int
	// lastPage is the last page read, minID the smallest id seen: where a
	// scan cut at maxPages resumes (see resume).
	lastPage, minID int
	// topPage is the page where the newest record of fresh was read.
	topPage int
}

// resume says where a scan starts: page 1 (the zero value), or deeper in
// the list. below, when positive, counts every record with an id at or
// above it as seen: the part a previous, cut scan read already.
type resume struct {
	page, below int
}

// scan pages newest first until a record for which old reports true (the
// boundary: at or below the cursor, or history by the first-start policy;
// i counts the records above the boundary seen before it), the end of the
// list, a page that brings nothing new, or maxScanPages.
//
// A page shorter than asked for is the end of the list, or a PBX that
// serves fewer records a page than asked for (the reference sets no
// maximum): the scan asks the next page at the size it got, and if that
// page brings new records the PBX's size is learned and the scan goes on at
// it, so that no record is skipped whatever the PBX's cap.
//
// It is longer than a function should be: one loop whose every branch
// bounds what a lying PBX can do, and reads best in one place.
func (s *scanner) scan(ctx context.Context, old func(r pbx.CDR, i int) bool, from resume) (scanResult, error) {
	var res scanResult
	seen := make(map[string]bool, 4) // anomalies told in this scan
	tell := func(reason string, attrs ...any) {
		if !seen[reason] {
			seen[reason] = true
			s.anomaly(reason, attrs...)
		}
	}
	size := s.size.get()
	minID := math.MaxInt // smallest id seen: the scan's position
	if from.below > 0 {
		minID = from.below
	}
	var held []pbx.CDR // records above the boundary, newest first
	var heldPage []int // the page each of held was read on
	above := 0         // records above the boundary seen, held or not
	probing := false   // this page asks whether a short page 1 was a cap
	first := max(from.page, 1)
	for page := first; ; page++ {
		if page >= first+s.maxPages {
			tell(anomalyPageLimit, "pages", s.maxPages, "records_above_cursor", above)
			break
		}
		p, err := s.src.CDRQuery(ctx, byID(page, size, "desc"))
		res.queries++
		res.lastPage = page
		if err != nil {
			return res, err
		}
		if t := p.TotalNumber; t < 0 || t > absurdTotal {
			tell(anomalyBadTotal, "total_number", t)
		}
		recs := s.clean(p.Records, tell)
		progress := false
		for _, r := range recs {
			if r.ID >= minID {
				continue // seen on an earlier page
			}
			minID, progress = r.ID, true
			if res.newest.ID == 0 {
				res.newest = r
			}
			if old(r, above) {
				res.base, res.complete, res.minID = r, true, minID
				return res.done(held, heldPage, s.keep), nil
			}
			held = append(held, r)
			heldPage = append(heldPage, page)
			above++
			if len(held) >= 2*s.keep {
				held = append(held[:0:0], held[len(held)-s.keep:]...)
				heldPage = append(heldPage[:0:0], heldPage[len(heldPage)-s.keep:]...)
				res.more = true
			}
		}
		n := len(p.Records)
		switch {
		case n == 0:
			res.complete = true
		case !progress && page == first && from.below > 0:
			// A resumed scan's first page may hold only records the cut
			// scan read (calls since pushed them down): read on.
		case !progress:
			// The same page again (a PBX that answers past the end with its
			// last page, or every page with the first): nothing more can be
			// read from it.
			tell(anomalyRepeatedPage, "page", page, "records", n)
			res.complete = true
		case probing:
			// Page 2 at page 1's size brought new records: page 1 was the
			// PBX's cap, not the end.
			s.size.learn(size)
			probing = false
			if n < size {
				res.complete = true
			}
		case n < size && page == 1 && first == 1:
			size, probing = n, true
		case n < size:
			res.complete = true
		}
		if res.complete {
			break
		}
	}
	res.minID = minID
	return res.done(held, heldPage, s.keep), nil
}

// done sets fresh to the oldest keep of held (newest first), oldest first,
// and topPage to the page of the newest of them.
func (res scanResult) done(held []pbx.CDR, pages []int, keep int) scanResult {
	if len(held) > keep {
		held, pages, res.more = held[len(held)-keep:], pages[len(pages)-keep:], true
	}
	res.fresh = ascending(held)
	if len(pages) > 0 {
		res.topPage = pages[0]
	}
	return res
}

// clean returns a page's usable records newest first: without records
// whose id is not a positive number (the client leaves an unreadable id 0),
// sorted if the PBX did not, and each id once.
func (s *scanner) clean(recs []pbx.CDR, tell func(string, ...any)) []pbx.CDR {
	out := recs[:0:0]
	bad := 0
	for _, r := range recs {
		if r.ID <= 0 {
			bad++
			continue
		}
		out = append(out, r)
	}
	if bad > 0 {
		tell(anomalyBadRecord, "records_without_id", bad)
	}
	sorted := true
	for i := 1; i < len(out); i++ {
		if out[i].ID >= out[i-1].ID {
			sorted = false
			break
		}
	}
	if !sorted {
		tell(anomalyOutOfOrder, "records", len(out))
		slices.SortStableFunc(out, func(a, b pbx.CDR) int { return b.ID - a.ID })
		out = slices.CompactFunc(out, func(a, b pbx.CDR) bool { return a.ID == b.ID })
	}
	return out
}

// ascending returns newest-first records oldest first, in a new slice.
func ascending(newestFirst []pbx.CDR) []pbx.CDR {
	out := slices.Clone(newestFirst)
	slices.Reverse(out)
	return out
}
