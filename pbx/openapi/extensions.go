package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/loose"
)

// Bounds of an extension listing. A P-Series PBX has at most a few thousand
// extensions; a listing that goes on past these is a PBX that ignores the
// page, or a list that never ends.
const (
	// ExtensionPageSize is the page_size that Extensions asks for.
	ExtensionPageSize = 100
	// MaxListedExtensions bounds what Extensions reads.
	MaxListedExtensions = 10000
)

// Extension is one extension of extension/list.
type Extension struct {
	ID     int    // id
	Number string // number: the extension number, the login username
	Name   string // caller_id_name
	// EmailAddr, MobileNumber, RoleName and PresenceStatus are as the PBX
	// gave them ("" when missing).
	EmailAddr      string
	MobileNumber   string
	RoleName       string
	PresenceStatus string
	// Online is online_status: which kinds of client are online now.
	Online OnlineStatus
}

// OnlineStatus is an extension's online_status: true where the endpoint
// type's status is 1.
type OnlineStatus struct {
	SIPPhone      bool
	LinkusDesktop bool
	LinkusMobile  bool
	LinkusWeb     bool
}

// maxListPages bounds the requests of one listing, whatever page size the
// PBX imposes.
const maxListPages = 1000

// Extensions lists the PBX's extensions (extension/list, sorted by number,
// ascending, ExtensionPageSize per page). It pages until it has
// total_number extensions, or a page comes back empty or short; it never
// asks for more than ceil(total_number/page size)+1 pages, nor reads more
// than MaxListedExtensions. A first page shorter than asked is taken as the
// PBX's own page size (a firmware may cap page_size silently), and the
// listing goes on with it until a page is short or total_number is reached.
// A total_number below what the PBX gave is not trusted. Fields are read
// loosely (an id or a number may be a string or a number); an item without
// a number is skipped, and counted in a warning.
//
// The result is in the PBX's order, each number once. When the listing
// cannot be trusted to be complete (a page with nothing but extensions
// already seen, before total_number was reached; or the bounds reached with
// pages still full), the extensions read so far are returned with an error
// wrapping ErrExtensionListIncomplete: use them to add extensions, not to
// remove any. Any other failure of a page fails the whole listing, with no
// extensions: a refusal is an *Error wrapping
// ErrExtensionListRefused (credentials that may not list extensions; the
// same credentials may still Sign), a transport failure a *pbx.TransportError.
func (o *Client) Extensions(ctx context.Context) ([]Extension, error) {
	var (
		all     []Extension
		seen    = map[string]bool{}
		size    = ExtensionPageSize
		skipped int
		total   = -1
	)
	for page := 1; ; page++ {
		maxPages := min(maxListPages, MaxListedExtensions/size+1)
		if total >= 0 {
			maxPages = min(maxPages, (total+size-1)/size+1)
		}
		if page > maxPages || len(all) >= MaxListedExtensions {
			return all, o.listIncomplete(fmt.Sprintf("stopped after %d pages and %d extensions with pages still full", page-1, len(all)))
		}
		items, pageTotal, bad, err := o.extensionPage(ctx, page, size)
		if err != nil {
			return nil, err
		}
		got := len(items) + bad
		skipped += bad
		fresh := 0
		for _, e := range items {
			if !seen[e.Number] {
				seen[e.Number] = true
				all = append(all, e)
				fresh++
			}
		}
		total = pageTotal
		if total >= 0 && len(all)+skipped > total {
			total = -1 // fewer than the PBX gave: not to be trusted
		}
		switch {
		case total >= 0 && len(all)+skipped >= total:
			return o.listDone(all, skipped)
		case got == 0:
			return o.listEnd(all, skipped, total, page)
		case fresh == 0 && len(items) > 0:
			return all, o.listIncomplete(fmt.Sprintf("page %d holds only extensions already listed, with %d read and total_number %d", page, len(all), total))
		case got < size && page == 1:
			size = got // the PBX's own page size, or the whole list: the next page tells
		case got < size:
			return o.listEnd(all, skipped, total, page)
		}
	}
}

// listEnd ends a listing at an empty or short page. A list that ends before
// its own total_number is not the whole list (a firmware that answers a
// page empty, a total that lies): what it holds may be added, but an
// extension missing from it may well exist, so it is incomplete. Without a
// total to go by, the end of the pages is the end of the list.
func (o *Client) listEnd(all []Extension, skipped, total, page int) ([]Extension, error) {
	if total >= 0 && len(all)+skipped < total {
		return all, o.listIncomplete(fmt.Sprintf("page %d ends the list with %d of total_number %d read", page, len(all)+skipped, total))
	}
	return o.listDone(all, skipped)
}

func (o *Client) listDone(all []Extension, skipped int) ([]Extension, error) {
	if skipped > 0 {
		o.log.Warn("pbx openapi: extension/list items without a usable number were skipped", "skipped", skipped, "listed", len(all))
	}
	return all, nil
}

func (o *Client) listIncomplete(why string) error {
	err := fmt.Errorf("%w: %s", ErrExtensionListIncomplete, why)
	o.log.Warn("pbx openapi: extension list incomplete", "err", err)
	return err
}

// extensionPage reads one page: its usable items, total_number (-1 if
// missing or unreadable), and how many items were skipped. A data that is
// not an array, or a missing one on the first page of a list that
// total_number does not say is empty, is an error: read as an empty list,
// it would make a caller stop serving every extension.
func (o *Client) extensionPage(ctx context.Context, page, size int) (items []Extension, total, skipped int, err error) {
	q := url.Values{
		"page":      {strconv.Itoa(page)},
		"page_size": {strconv.Itoa(size)},
		"sort_by":   {"number"},
		"order_by":  {"asc"},
	}
	var out struct {
		Total any             `json:"total_number"`
		Data  json.RawMessage `json:"data"`
	}
	if err := o.authedCall(ctx, http.MethodGet, "extension/list", q, nil, ErrExtensionListRefused, &out); err != nil {
		return nil, 0, 0, err
	}
	total = -1
	if n, ok := loose.Int(out.Total); ok && n >= 0 {
		total = n
	}
	var data []json.RawMessage
	switch {
	case len(out.Data) == 0 || string(out.Data) == "null":
		if page == 1 && total != 0 {
			return nil, 0, 0, &pbx.TransportError{Endpoint: openAPIPrefix + "extension/list", SDK: pbx.ErrPBXNetwork, Err: errors.New("answer has no data")}
		}
	case json.Unmarshal(out.Data, &data) != nil:
		return nil, 0, 0, &pbx.TransportError{Endpoint: openAPIPrefix + "extension/list", SDK: pbx.ErrPBXNetwork, Err: errors.New("answer's data is not an array")}
	}
	for _, raw := range data {
		if e, ok := decodeExtension(raw); ok {
			items = append(items, e)
		} else {
			skipped++
		}
	}
	return items, total, skipped, nil
}

// decodeExtension reads one item loosely; false for one that is not an
// object or has no usable number.
func decodeExtension(raw json.RawMessage) (Extension, bool) {
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if d.Decode(&m) != nil || m == nil {
		return Extension{}, false
	}
	e := Extension{
		Name:           looseString(m["caller_id_name"]),
		EmailAddr:      looseString(m["email_addr"]),
		MobileNumber:   looseString(m["mobile_number"]),
		RoleName:       looseString(m["role_name"]),
		PresenceStatus: looseString(m["presence_status"]),
	}
	e.ID, _ = loose.Int(m["id"])
	switch n := m["number"].(type) {
	case string:
		e.Number = strings.TrimSpace(n)
	case json.Number:
		if _, err := strconv.ParseUint(string(n), 10, 64); err == nil {
			e.Number = string(n)
		}
	}
	if e.Number == "" {
		return Extension{}, false
	}
	if st, ok := m["online_status"].(map[string]any); ok {
		on := func(key string) bool {
			s, _ := st[key].(map[string]any)
			n, ok := loose.Int(s["status"])
			return ok && n == 1
		}
		e.Online = OnlineStatus{SIPPhone: on("sip_phone"), LinkusDesktop: on("linkus_desktop"), LinkusMobile: on("linkus_mobile"), LinkusWeb: on("linkus_web")}
	}
	return e, true
}

// looseString reads a string field; a number is shown as its digits,
// anything else is "".
func looseString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case json.Number:
		return string(s)
	}
	return ""
}
