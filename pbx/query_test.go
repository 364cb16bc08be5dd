package pbx_test

import (
	"errors"
	"reflect"
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
