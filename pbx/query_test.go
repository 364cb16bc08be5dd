package pbx_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

func ptr[T any](v T) *T { return &v }

func TestCDRQueryNormalized(t *testing.T) {
	tests := []struct {
		name    string
		q       pbx.CDRQuery
		want    pbx.CDRQuery
		wantErr string // a fragment of the error; "" for none
	}{
		{name: "zero takes the SDK defaults", q: pbx.CDRQuery{},
			want: pbx.CDRQuery{Page: 1, Size: 20, SortBy: "time", OrderBy: "desc"}},
		{name: "all set", q: pbx.CDRQuery{Page: 3, Size: 100, Status: pbx.StatusMissed, SortBy: "id", OrderBy: "asc", Filter: ptr("2000")},
			want: pbx.CDRQuery{Page: 3, Size: 100, Status: pbx.StatusMissed, SortBy: "id", OrderBy: "asc", Filter: ptr("2000")}},
		{name: "empty filter is none", q: pbx.CDRQuery{Filter: ptr("")},
			want: pbx.CDRQuery{Page: 1, Size: 20, SortBy: "time", OrderBy: "desc"}},
		{name: "negative page", q: pbx.CDRQuery{Page: -1}, wantErr: "page -1"},
		{name: "size too big", q: pbx.CDRQuery{Size: 101}, wantErr: "size 101"},
		{name: "negative size", q: pbx.CDRQuery{Size: -5}, wantErr: "size -5"},
		{name: "status too big", q: pbx.CDRQuery{Status: 4}, wantErr: "status 4"},
		{name: "negative status", q: pbx.CDRQuery{Status: -1}, wantErr: "status -1"},
		{name: "bad sortBy", q: pbx.CDRQuery{SortBy: "date"}, wantErr: `sortBy "date"`},
		{name: "bad orderBy", q: pbx.CDRQuery{OrderBy: "DESC"}, wantErr: `orderBy "DESC"`},
		{name: "long filter", q: pbx.CDRQuery{Filter: ptr(strings.Repeat("1", 65))}, wantErr: "longer than 64"},
		{name: "control character in filter", q: pbx.CDRQuery{Filter: ptr("10\n01")}, wantErr: "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.q.Normalized()
			if tt.wantErr != "" {
				if !errors.Is(err, pbx.ErrInvalidQuery) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalidQuery with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestCDRQueryValidate: the range rules alone, without defaults, so that the
// bridge's request parser and the client refuse the same queries.
func TestCDRQueryValidate(t *testing.T) {
	valid := pbx.CDRQuery{Page: 1, Size: 20, SortBy: "time", OrderBy: "desc"}
	with := func(modify func(*pbx.CDRQuery)) pbx.CDRQuery {
		q := valid
		modify(&q)
		return q
	}
	tests := []struct {
		name    string
		q       pbx.CDRQuery
		wantErr string // a fragment of the error; "" for none
	}{
		{name: "valid", q: valid},
		{name: "zero is not filled in", q: pbx.CDRQuery{}, wantErr: "page 0"},
		{name: "size 0 is not filled in", q: with(func(q *pbx.CDRQuery) { q.Size = 0 }), wantErr: "size 0"},
		{name: "empty sortBy is not filled in", q: with(func(q *pbx.CDRQuery) { q.SortBy = "" }), wantErr: "sortBy"},
		{name: "largest size", q: with(func(q *pbx.CDRQuery) { q.Size = pbx.MaxCDRSize })},
		{name: "every status", q: with(func(q *pbx.CDRQuery) { q.Status = pbx.StatusOutgoing })},
		{name: "empty filter is none", q: with(func(q *pbx.CDRQuery) { q.Filter = ptr("") })},
		{name: "64-byte filter", q: with(func(q *pbx.CDRQuery) { q.Filter = ptr(strings.Repeat("9", 64)) })},
		{name: "65-byte filter", q: with(func(q *pbx.CDRQuery) { q.Filter = ptr(strings.Repeat("9", 65)) }), wantErr: "longer than 64"},
		{name: "tab", q: with(func(q *pbx.CDRQuery) { q.Filter = ptr("10\t01") }), wantErr: "control character"},
		{name: "DEL", q: with(func(q *pbx.CDRQuery) { q.Filter = ptr("10\x7f") }), wantErr: "control character"},
		{name: "C1 control", q: with(func(q *pbx.CDRQuery) { q.Filter = ptr("10\u0085") }), wantErr: "control character"},
		{name: "invalid UTF-8", q: with(func(q *pbx.CDRQuery) { q.Filter = ptr("10\xff") }), wantErr: "UTF-8"},
		{name: "plus and spaces", q: with(func(q *pbx.CDRQuery) { q.Filter = ptr("+49 30 1234") })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.q.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
			} else if !errors.Is(err, pbx.ErrInvalidQuery) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want ErrInvalidQuery with %q", err, tt.wantErr)
			}
			// Normalized is defaults, then the same rules: on a query
			// without zero fields the two agree.
			if tt.q.Page != 0 && tt.q.Size != 0 && tt.q.SortBy != "" {
				if _, nerr := tt.q.Normalized(); (nerr == nil) != (err == nil) {
					t.Fatalf("Normalized = %v, Validate = %v: they disagree", nerr, err)
				}
			}
		})
	}
}

// TestCDRPageOddities: what a searchpersonal answer of a firmware that is
// not the simulator gives: numbers as strings or floats read as numbers,
// unusable fields left zero and reported, an unusable total as -1, and a
// list that is no list as an error, never as an empty page.
func TestCDRPageOddities(t *testing.T) {
	type problem struct{ endpoint, field string }
	tests := []struct {
		name     string
		body     string
		want     *pbx.CDRResult
		problems []problem
		err      string // a fragment of the error; "" for none
		apiErr   bool
	}{
		{name: "no list, no total", body: `{"errcode":0,"errmsg":"SUCCESS"}`, want: &pbx.CDRResult{ErrMsg: "SUCCESS"}},
		{name: "null list, total as a string", body: `{"errcode":0,"personal_cdr_list":null,"total_number":"0"}`, want: &pbx.CDRResult{}},
		{name: "strings and floats for numbers",
			body: `{"errcode":0,"personal_cdr_list":[{"id":"2546","status":"2","timestamp":"1693201380","talk_duration":3.0,"number":2000,` +
				`"extension":{"ext_id":"3","ext_num":1001,"enb_vm":"1"},"disposition":"NO ANSWER"}],"total_number":1.0}`,
			want: &pbx.CDRResult{TotalNumber: 1, Records: []pbx.CDR{{ID: 2546, Status: pbx.StatusMissed, Timestamp: 1693201380, TalkDuration: 3, Number: "2000",
				Extension: pbx.CDRExtension{ExtID: 3, ExtNum: "1001", EnbVM: 1}, Disposition: "NO ANSWER"}}}},
		{name: "unusable fields",
			body: `{"errcode":0,"personal_cdr_list":[{"id":{"x":1},"number":"2001"},7,{"id":8,"extension":"none","status":2.5}],"total_number":"many"}`,
			want: &pbx.CDRResult{TotalNumber: -1, Records: []pbx.CDR{{Number: "2001"}, {}, {ID: 8}}},
			problems: []problem{
				{"cdr/searchpersonal", "personal_cdr_list[0].id"},
				{"cdr/searchpersonal", "personal_cdr_list[1]"},
				{"cdr/searchpersonal", "personal_cdr_list[2].extension"},
				{"cdr/searchpersonal", "personal_cdr_list[2].status"},
				{"cdr/searchpersonal", "total_number"},
			}},
		{name: "negative total is the PBX's", body: `{"errcode":0,"personal_cdr_list":[],"total_number":-5}`, want: &pbx.CDRResult{TotalNumber: -5, Records: []pbx.CDR{}}},
		{name: "list is an object", body: `{"errcode":0,"personal_cdr_list":{"id":1},"total_number":1}`,
			problems: []problem{{"cdr/searchpersonal", "personal_cdr_list"}}, err: "personal_cdr_list is a JSON object, not a list"},
		{name: "list is a string", body: `{"errcode":0,"personal_cdr_list":"","total_number":0}`,
			problems: []problem{{"cdr/searchpersonal", "personal_cdr_list"}}, err: "personal_cdr_list is a JSON string"},
		{name: "an errcode wins over a bad list", body: `{"errcode":40002,"errmsg":"PARAMETER ERROR","personal_cdr_list":7}`,
			want: &pbx.CDRResult{ErrCode: 40002, ErrMsg: "PARAMETER ERROR"}, problems: []problem{{"cdr/searchpersonal", "personal_cdr_list"}}, err: "40002", apiErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/v1.0/login" {
					_, _ = w.Write([]byte(`{"errcode":0,"access_token":"tok-0123456789abcdef"}`))
					return
				}
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			var problems []problem
			c, err := pbx.NewClient(pbx.Config{URL: srv.URL, Username: "1001", Secret: "signature-0123456789",
				RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, Logger: testLogger(t),
				Hooks: pbx.Hooks{DecodeProblem: func(endpoint, field string) { problems = append(problems, problem{endpoint, field}) }}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			if _, err := c.Login(context.Background()); err != nil {
				t.Fatal(err)
			}
			res, err := c.SearchPersonal(context.Background(), pbx.CDRQuery{})
			if tt.err == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.err != "" {
				var ae *pbx.APIError
				if !errors.Is(err, pbx.ErrPBXAPI) || !strings.Contains(err.Error(), tt.err) || errors.As(err, &ae) != tt.apiErr {
					t.Fatalf("err = %v, want ErrPBXAPI with %q (an *APIError: %v)", err, tt.err, tt.apiErr)
				}
			}
			if !reflect.DeepEqual(res, tt.want) {
				t.Errorf("result = %+v\nwant     %+v", res, tt.want)
			}
			if !slices.Equal(problems, tt.problems) {
				t.Errorf("problems %v\nwant     %v", problems, tt.problems)
			}
		})
	}
}
