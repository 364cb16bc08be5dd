package catchup

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// clientSource reads CDRs with a bare, logged-in pbx.Client.
type clientSource struct{ c *pbx.Client }

func (s clientSource) CDRQuery(ctx context.Context, q pbx.CDRQuery) (*pbx.CDRResult, error) {
	return s.c.SearchPersonal(ctx, q)
}

// countingSource counts the queries a scan makes.
type countingSource struct {
	Source
	n int
}

func (s *countingSource) CDRQuery(ctx context.Context, q pbx.CDRQuery) (*pbx.CDRResult, error) {
	s.n++
	return s.Source.CDRQuery(ctx, q)
}

// scanPBX starts a simulator with one extension holding n records (ids 1..n)
// and returns it with a logged-in source.
func scanPBX(t *testing.T, n int) (*pbxtest.Server, Source) {
	t.Helper()
	srv, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	e := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	start := time.Now().Add(-time.Duration(n) * time.Second)
	for i := range n {
		if _, err := srv.Call("1001", pbxtest.Call{Kind: pbxtest.Missed, Silent: true, Time: start.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := pbx.NewClient(pbx.Config{URL: srv.URL(), Username: "1001", Secret: e.Secret, RootCAs: srv.CertPool(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv, clientSource{c}
}

func ids(recs []pbx.CDR) []int {
	out := make([]int, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func span(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// TestScan runs the catch-up scan against honest and lying PBXes: whatever
// the PBX does, the scan ends, and an honest answer under a cap loses no
// record.
func TestScan(t *testing.T) {
	after := func(id int) func(pbx.CDR, int) bool { return func(r pbx.CDR, _ int) bool { return r.ID <= id } }
	never := func(pbx.CDR, int) bool { return false }
	cases := []struct {
		name       string
		records    int
		setup      func(*pbxtest.Server)
		keep       int
		maxPages   int
		old        func(pbx.CDR, int) bool
		want       []int
		more       bool
		incomplete bool
		anomalies  []string
		maxQueries int
		learned    int // page size learned, 0: none
	}{
		{name: "one new record costs one query", records: 250, old: after(249), want: []int{250}, maxQueries: 1},
		{name: "nothing new", records: 250, old: after(250), want: nil, maxQueries: 1},
		{name: "gap over pages", records: 250, old: after(100), want: span(101, 250), maxQueries: 2},
		{name: "everything new", records: 250, old: never, want: span(1, 250), maxQueries: 3},
		{name: "empty PBX", records: 0, old: never, want: nil, maxQueries: 1},
		{name: "cap 20, offsets by served size", records: 130, old: never, want: span(1, 130),
			setup: func(s *pbxtest.Server) { s.SetPageCap(20, false) }, learned: 20, maxQueries: 8},
		{name: "cap 50, offsets by asked size", records: 130, old: after(10), want: span(11, 130),
			setup: func(s *pbxtest.Server) { s.SetPageCap(50, true) }, learned: 50, maxQueries: 3},
		{name: "cap 20 with the cursor inside the first page", records: 130, old: after(125), want: span(126, 130),
			setup: func(s *pbxtest.Server) { s.SetPageCap(20, false) }, maxQueries: 1},
		{name: "last page repeated past the end", records: 200, old: never, want: span(1, 200),
			setup: func(s *pbxtest.Server) { s.SetRepeatLastPage(true) }, anomalies: []string{anomalyRepeatedPage}, maxQueries: 3},
		{name: "the same full page forever", records: 300, old: never, want: span(201, 300),
			setup: func(s *pbxtest.Server) { s.SetSamePage(true) }, anomalies: []string{anomalyRepeatedPage}, maxQueries: 2},
		{name: "huge total", records: 150, old: after(20), want: span(21, 150),
			setup: func(s *pbxtest.Server) { s.SetTotalNumber(func(int) int { return 1 << 40 }) }, anomalies: []string{anomalyBadTotal}, maxQueries: 2},
		{name: "negative total", records: 150, old: after(20), want: span(21, 150),
			setup: func(s *pbxtest.Server) { s.SetTotalNumber(func(int) int { return -7 }) }, anomalies: []string{anomalyBadTotal}, maxQueries: 2},
		{name: "numbers as strings", records: 150, old: after(20), want: span(21, 150),
			setup: func(s *pbxtest.Server) { s.SetNumberStyle(pbxtest.NumbersAsStrings) }, maxQueries: 2},
		{name: "more than keep: the oldest first", records: 250, old: after(50), keep: 30, want: span(51, 80), more: true, maxQueries: 3},
		{name: "page limit", records: 250, old: never, maxPages: 2, want: span(51, 250), incomplete: true,
			anomalies: []string{anomalyPageLimit}, maxQueries: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, src := scanPBX(t, tc.records)
			if tc.setup != nil {
				tc.setup(srv)
			}
			counted := &countingSource{Source: src}
			var got []string
			s := &scanner{src: counted, size: &PageSize{}, keep: cmpOr(tc.keep, scanKeep), maxPages: cmpOr(tc.maxPages, MaxScanPages),
				anomaly: func(reason string, _ ...any) { got = append(got, reason) }}
			res, err := s.scan(context.Background(), tc.old, resume{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(res.fresh), tc.want) {
				t.Errorf("fresh = %v, want %v", short(ids(res.fresh)), short(tc.want))
			}
			if res.more != tc.more || res.complete == tc.incomplete {
				t.Errorf("more %v complete %v, want more %v complete %v", res.more, res.complete, tc.more, !tc.incomplete)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.anomalies) {
				t.Errorf("anomalies %v, want %v", got, tc.anomalies)
			}
			if counted.n > tc.maxQueries {
				t.Errorf("%d queries, want at most %d", counted.n, tc.maxQueries)
			}
			if l := int(s.size.n.Load()); l != tc.learned {
				t.Errorf("learned page size %d, want %d", l, tc.learned)
			}
		})
	}
}

// TestScanKeepsNoHoleUnderArrivals: records created while a scan runs push
// the pages it has not read yet; it sees the pushed records again, never
// skips one.
func TestScanKeepsNoHoleUnderArrivals(t *testing.T) {
	srv, src := scanPBX(t, 350)
	arrivals := &arrivingSource{Source: src, srv: srv}
	s := &scanner{src: arrivals, size: &PageSize{}, keep: scanKeep, maxPages: MaxScanPages, anomaly: func(string, ...any) {}}
	res, err := s.scan(context.Background(), func(r pbx.CDR, _ int) bool { return r.ID <= 10 }, resume{})
	if err != nil {
		t.Fatal(err)
	}
	// Records 11..350 were there at the start; those created during the scan
	// may or may not be in it (the next catch-up takes them), but nothing
	// in between is missing.
	got := ids(res.fresh)
	if len(got) < 340 || !slices.Equal(got[:340], span(11, 350)) {
		t.Fatalf("fresh = %v, want 11..350 then what arrived", short(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("hole after %d: %v", got[i-1], short(got))
		}
	}
}

// arrivingSource makes a call of 30 records' worth before every page
// after the first.
type arrivingSource struct {
	Source
	srv   *pbxtest.Server
	pages int
}

func (s *arrivingSource) CDRQuery(ctx context.Context, q pbx.CDRQuery) (*pbx.CDRResult, error) {
	if s.pages++; s.pages > 1 {
		for range 30 {
			if _, err := s.srv.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, Silent: true}); err != nil {
				return nil, err
			}
		}
	}
	return s.Source.CDRQuery(ctx, q)
}

func TestPageSizeOnlyShrinks(t *testing.T) {
	var p PageSize
	if got := p.get(); got != pbx.MaxCDRSize {
		t.Fatalf("unlearned size %d, want %d", got, pbx.MaxCDRSize)
	}
	for _, n := range []int{50, 80, 0, -3, 20, 40} {
		p.learn(n)
	}
	if got := p.get(); got != 20 {
		t.Fatalf("size %d after learning 50, 80, 0, -3, 20, 40; want 20", got)
	}
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// short shows a long id list by its ends.
func short(v []int) string {
	if len(v) <= 8 {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%v ... %v (%d)", v[:3], v[len(v)-3:], len(v))
}
