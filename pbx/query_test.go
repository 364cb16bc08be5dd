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
