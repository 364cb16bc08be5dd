package pbx

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Normalized returns q with the SDK's defaults in its zero fields (an empty
// filter becomes none), then checks it with Validate.
func (q CDRQuery) Normalized() (CDRQuery, error) {
	if q.Page == 0 {
		q.Page = DefaultCDRPage
	}
	if q.Size == 0 {
		q.Size = DefaultCDRSize
	}
	if q.SortBy == "" {
		q.SortBy = DefaultCDRSortBy
	}
	if q.OrderBy == "" {
		q.OrderBy = DefaultCDROrderBy
	}
	if q.Filter != nil && *q.Filter == "" {
		q.Filter = nil
	}
	return q, q.Validate()
}

// MaxCDRFilterBytes is the longest filter a CDRQuery may carry.
const MaxCDRFilterBytes = 64

// Validate checks the range rules of a query as it will be sent, without
// filling defaults: page at least 1, size 1..MaxCDRSize, status 0..3, sortBy
// time or id, orderBy desc or asc, and a filter of at most
// MaxCDRFilterBytes bytes of valid UTF-8 without control characters (an
// empty filter means none). Every error wraps ErrInvalidQuery. It is the one
// place these rules live: the bridge's request parser calls it too.
func (q CDRQuery) Validate() error {
	switch {
	case q.Page < 1:
		return fmt.Errorf("%w: page %d is below 1", ErrInvalidQuery, q.Page)
	case q.Size < 1 || q.Size > MaxCDRSize:
		return fmt.Errorf("%w: size %d is outside 1..%d", ErrInvalidQuery, q.Size, MaxCDRSize)
	case q.Status < StatusAll || q.Status > StatusOutgoing:
		return fmt.Errorf("%w: status %d is outside 0..3", ErrInvalidQuery, q.Status)
	case q.SortBy != "time" && q.SortBy != "id":
		return fmt.Errorf("%w: sortBy %q is neither time nor id", ErrInvalidQuery, q.SortBy)
	case q.OrderBy != "desc" && q.OrderBy != "asc":
		return fmt.Errorf("%w: orderBy %q is neither desc nor asc", ErrInvalidQuery, q.OrderBy)
	}
	if q.Filter == nil {
		return nil
	}
	f := *q.Filter
	switch {
	case len(f) > MaxCDRFilterBytes:
		return fmt.Errorf("%w: filter is longer than %d bytes", ErrInvalidQuery, MaxCDRFilterBytes)
	case !utf8.ValidString(f):
		return fmt.Errorf("%w: filter is not valid UTF-8", ErrInvalidQuery)
	case strings.IndexFunc(f, unicode.IsControl) >= 0:
		// A control character is never part of a number, and in a query
		// string some of them end up mangled by proxies or the PBX.
		return fmt.Errorf("%w: filter has a control character", ErrInvalidQuery)
	}
	return nil
}
