package pbxtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// ListFaults make extension/list misbehave in the ways the reference warns a
// firmware may ("page sizes, field types, totals vary"), so that a client's
// paging can be tested against them. The zero value is a well-behaved list.
type ListFaults struct {
	// MaxPageSize caps every page at this many items whatever page_size
	// asks, silently; the offset is computed with the capped size. 0 means
	// no cap.
	MaxPageSize int
	// TotalNumber, when positive, is reported as total_number instead of
	// the true count (a lying total); -1 leaves total_number out.
	TotalNumber int
	// IgnorePage answers the first page whatever page is asked: every
	// later page repeats it.
	IgnorePage bool
	// Endless pads every page to its full size with invented extensions
	// (numbers from 900000 up): a list that never ends.
	Endless bool
	// LooseTypes sends id as a JSON string and number as a JSON number,
	// as a loosely typed firmware might.
	LooseTypes bool
	// EmptyPage, when positive, answers that page (1-based) with an empty
	// data array and the true total_number, as a firmware glitch might.
	EmptyPage int
}

// SetListFaults makes extension/list misbehave as f says, from the next
// request on; ListFaults{} restores a well-behaved list.
func (s *Server) SetListFaults(f ListFaults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openAPI().listFaults = f
}

// extensionListSorts are the sort_by values of the reference, each with the
// field it compares.
var extensionListSorts = map[string]func(e *extension) string{
	"number":          func(e *extension) string { return e.Number },
	"caller_id_name":  func(e *extension) string { return e.Name },
	"email_addr":      func(*extension) string { return "" },
	"mobile_number":   func(*extension) string { return "" },
	"presence_status": func(*extension) string { return "available" },
}

// extensionList answers extension/list: a page of the extensions, in the
// order asked (by id ascending when not), with the true total_number unless
// a ListFaults says otherwise. The parameters are all optional: page
// (default 1), page_size (1..1000, default 20), sort_by, order_by.
func (s *Server) extensionList(oa *openAPIState, req openAPIRequest) any {
	page, pageSize := 1, 20
	for _, p := range []struct {
		name   string
		dst    *int
		lo, hi int
	}{{"page", &page, 1, 1 << 30}, {"page_size", &pageSize, 1, 1000}} {
		if !req.query.Has(p.name) {
			continue
		}
		n, err := strconv.Atoi(req.query.Get(p.name))
		if err != nil || n < p.lo || n > p.hi {
			return errParameter
		}
		*p.dst = n
	}
	sortBy, orderBy := req.query.Get("sort_by"), req.query.Get("order_by")
	key, known := extensionListSorts[sortBy]
	switch {
	case sortBy != "" && sortBy != "id" && !known:
		return errParameter
	case orderBy != "" && orderBy != "asc" && orderBy != "desc":
		return errParameter
	}
	for name := range req.query {
		if name != "page" && name != "page_size" && name != "sort_by" && name != "order_by" {
			return errParameter
		}
	}
	if oa.listDenied {
		return errOANoPermission
	}

	exts := make([]*extension, 0, len(s.exts))
	for _, e := range s.exts {
		exts = append(exts, e)
	}
	slices.SortFunc(exts, func(a, b *extension) int {
		c := 0
		if key != nil {
			c = cmp.Compare(key(a), key(b))
		}
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		if orderBy == "desc" {
			c = -c
		}
		return c
	})

	f := oa.listFaults
	if f.MaxPageSize > 0 {
		pageSize = min(pageSize, f.MaxPageSize)
	}
	if f.IgnorePage {
		page = 1
	}
	items := []any{} // an empty page is [], never null
	first, last := (page-1)*pageSize, page*pageSize
	if f.EmptyPage == page {
		last = first
	}
	for i := first; i < last; i++ {
		switch {
		case i < len(exts):
			items = append(items, s.listItem(exts[i], f.LooseTypes))
		case f.Endless:
			invented := &extension{Extension: Extension{ID: 900000 + i, Number: strconv.Itoa(900000 + i), Name: "Invented"}}
			items = append(items, s.listItem(invented, f.LooseTypes))
		}
	}
	answer := ok(map[string]any{"data": items, "total_number": len(exts)})
	switch {
	case f.TotalNumber > 0:
		answer["total_number"] = f.TotalNumber
	case f.TotalNumber < 0:
		delete(answer, "total_number")
	}
	return answer
}

// listItem renders an extension as extension/list does. linkus_web is
// online while the extension has a live subscribe socket. s.mu must be held.
func (s *Server) listItem(e *extension, loose bool) map[string]any {
	web := 0
	if a := s.activity[e.Number]; a != nil && a.live > 0 {
		web = 1
	}
	status := func(n int) map[string]int { return map[string]int{"status": n} }
	var id, number any = e.ID, e.Number
	if loose {
		id = strconv.Itoa(e.ID)
		if n, err := strconv.Atoi(e.Number); err == nil {
			number = json.Number(fmt.Sprint(n))
		}
	}
	return map[string]any{
		"id":             id,
		"number":         number,
		"caller_id_name": e.Name,
		"online_status": map[string]any{
			"sip_phone":      status(0),
			"linkus_desktop": status(0),
			"linkus_mobile":  status(0),
			"linkus_web":     status(web),
		},
		"presence_status": "available",
		"role_name":       "Employee",
		"email_addr":      "",
		"mobile_number":   "",
	}
}
