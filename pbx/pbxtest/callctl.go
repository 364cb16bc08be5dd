package pbxtest

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The OpenAPI's call control (shared/reference/openapi-events.md, section
// 3): POST call/dial, call/hangup, call/hold, call/unhold, call/transfer and
// GET call/query, as strict as the rest of the OpenAPI: a User-Agent, the
// token in the query, a JSON object body whose keys are all the
// endpoint's, every value a string, the required ones not empty. The
// errcodes are the reference's: 40002 PARAMETER ERROR for a bad request,
// 60001 DATA NOT FOUND for an unknown channel, call or caller, and 70084
// ACTION FORBIDDEN for an action the member's state does not allow (which
// errcodes a real PBX gives for the last two is not documented).

var (
	errDataNotFound    = result{60001, "DATA NOT FOUND"}
	errActionForbidden = result{70084, "ACTION FORBIDDEN"}
)

// callRoutes are the call control endpoints, for apiRoutes.
func (s *Server) callRoutes() map[string]route {
	return map[string]route{
		"/openapi/v1.0/call/dial":     {http.MethodPost, s.callEndpoint(s.callDial, []string{"caller", "callee"}, "dial_permission", "auto_answer")},
		"/openapi/v1.0/call/hangup":   {http.MethodPost, s.callEndpoint(s.callHangup, nil, "channel_id", "paging_number")},
		"/openapi/v1.0/call/hold":     {http.MethodPost, s.callEndpoint(s.channelAction(s.Hold), []string{"channel_id"})},
		"/openapi/v1.0/call/unhold":   {http.MethodPost, s.callEndpoint(s.channelAction(s.Unhold), []string{"channel_id"})},
		"/openapi/v1.0/call/transfer": {http.MethodPost, s.callEndpoint(s.callTransfer, []string{"type", "channel_id"}, "number", "dial_permission", "attended_operate")},
		"/openapi/v1.0/call/query":    {http.MethodGet, s.callEndpoint(s.callQuery, nil)},
		eventSubscribePath:            {http.MethodGet, s.eventSubscribe},
	}
}

// callRequest is a checked call control request.
type callRequest struct {
	body  map[string]string // POST: the body's fields
	query url.Values        // the parameters other than access_token
}

// callEndpoint adapts a call control endpoint: the checks of
// openAPIEndpoint, with optional body keys. The handler runs without
// s.mu (it drives the calls, which take it).
func (s *Server) callEndpoint(h func(req callRequest) any, required []string, optional ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ua := r.UserAgent(); ua == "" || strings.HasPrefix(ua, "Go-http-client/") {
			writeJSON(w, http.StatusForbidden, errOANoUserAgent)
			return
		}
		req := callRequest{query: r.URL.Query()}
		for _, v := range req.query {
			if len(v) > 1 {
				writeJSON(w, http.StatusOK, errParameter)
				return
			}
		}
		token := req.query.Get("access_token")
		req.query.Del("access_token")
		s.mu.Lock()
		oa := s.openAPI()
		oa.expire(time.Now())
		authed := oa.access[token] != nil && r.Header.Get("Authorization") == ""
		s.mu.Unlock()
		if !authed {
			writeJSON(w, http.StatusOK, errInvalidToken)
			return
		}
		if r.Method == http.MethodPost {
			var valid bool
			if req.body, valid = stringObject(r, required, optional); !valid || len(req.query) > 0 {
				writeJSON(w, http.StatusOK, errParameter)
				return
			}
		}
		writeJSON(w, http.StatusOK, h(req))
	}
}

// stringObject reads a JSON object body whose keys are all required or
// optional ones, whose values are all strings, and whose required values
// are not empty.
func stringObject(r *http.Request, required, optional []string) (map[string]string, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, false
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxFrameSize))
	if err != nil {
		return nil, false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		return nil, false
	}
	body := make(map[string]string, len(fields))
	for k, v := range fields {
		s, ok := jsonString(v)
		if !ok || !slices.Contains(required, k) && !slices.Contains(optional, k) {
			return nil, false
		}
		body[k] = s
	}
	for _, k := range required {
		if body[k] == "" {
			return nil, false
		}
	}
	return body, true
}

// callError maps a call knob's refusal to the PBX's answer.
func callError(err error) any {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNoCall), errors.Is(err, errNoChannel):
		return errDataNotFound
	case errors.Is(err, errWrongState):
		return errActionForbidden
	}
	return errParameter
}

// callAnswer is the answer of a call control action.
func callAnswer(callID string, err error) any {
	if e := callError(err); e != nil {
		return e
	}
	return ok(map[string]any{"call_id": callID})
}

// callDial answers call/dial: the caller must be an extension (else 60001),
// dial_permission too when given, auto_answer "yes" or "no" (the
// reference's guess; a real PBX's values are not documented).
func (s *Server) callDial(req callRequest) any {
	b := req.body
	if aa, set := b["auto_answer"]; set && aa != "yes" && aa != "no" {
		return errParameter
	}
	var id string
	err := s.change(func(ls *liveState, tx *liveTx) error {
		if p, set := b["dial_permission"]; set && s.exts[p] == nil {
			return errNoChannel
		}
		c, err := s.dialCall(ls, b["caller"], b["callee"], b["auto_answer"] == "yes", tx)
		if err != nil {
			return err
		}
		id = c.id
		return nil
	})
	return callAnswer(id, err)
}

// callHangup answers call/hangup: both fields are optional by the
// reference, but without a channel_id there is nothing to hang up here
// (paging is not simulated: a paging_number alone is not found).
func (s *Server) callHangup(req callRequest) any {
	ch, set := req.body["channel_id"]
	switch {
	case !set && req.body["paging_number"] != "":
		return errDataNotFound
	case ch == "":
		return errParameter
	}
	return s.channelAction(s.Hangup)(req)
}

// channelAction answers an endpoint that acts on body's channel_id.
func (s *Server) channelAction(act func(channelID string) error) func(req callRequest) any {
	return func(req callRequest) any {
		ch := req.body["channel_id"]
		id := s.callOf(ch)
		return callAnswer(id, act(ch))
	}
}

// callOf returns the call_id of the live call with the channel.
func (s *Server) callOf(channelID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, _ := s.live().find(channelID); c != nil {
		return c.id
	}
	return ""
}

// callTransfer answers call/transfer. Blind: the channel is the member
// moved (A), number and dial_permission are required. Attended: the channel
// is the transferor (B); number and dial_permission start it, and
// attended_operate (abort, complete, threeway, swap) acts on it.
func (s *Server) callTransfer(req callRequest) any {
	b := req.body
	typ, ch, number, perm, op := b["type"], b["channel_id"], b["number"], b["dial_permission"], b["attended_operate"]
	id := s.callOf(ch)
	var act func(ls *liveState, tx *liveTx) error
	switch {
	case typ == "blind" && op == "" && number != "" && perm != "":
		act = func(ls *liveState, tx *liveTx) error { return s.blindTransfer(ls, ch, number, tx) }
	case typ == "attended" && op == "" && number != "" && perm != "":
		act = func(ls *liveState, tx *liveTx) error { return s.attendedTransfer(ls, ch, number, tx) }
	case typ == "attended" && slices.Contains([]string{"abort", "complete", "threeway", "swap"}, op):
		act = func(ls *liveState, tx *liveTx) error { return s.attendedOperate(ls, ch, op, tx) }
	default:
		return errParameter
	}
	return callAnswer(id, s.change(func(ls *liveState, tx *liveTx) error {
		if perm != "" && s.exts[perm] == nil {
			return errBadNumber
		}
		return act(ls, tx)
	}))
}

// callQuery answers call/query: exactly one of call_id, type (inbound,
// outbound, internal) and extension; data lists the matching calls as
// 30011's msg does.
func (s *Server) callQuery(req callRequest) any {
	q := req.query
	if len(q) != 1 {
		return errParameter
	}
	var match func(c *liveCall) bool
	switch {
	case q.Has("call_id"):
		match = func(c *liveCall) bool { return c.id == q.Get("call_id") }
	case q.Has("type") && slices.Contains([]string{"inbound", "outbound", "internal"}, q.Get("type")):
		match = func(c *liveCall) bool { return strings.EqualFold(c.kind, q.Get("type")) }
	case q.Has("extension") && q.Get("extension") != "":
		match = func(c *liveCall) bool {
			return slices.ContainsFunc(c.members, func(m *liveMember) bool { return m.kind == "extension" && m.number == q.Get("extension") })
		}
	default:
		return errParameter
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.live()
	var calls []*liveCall
	for _, c := range ls.calls {
		if match(c) {
			calls = append(calls, c)
		}
	}
	slices.SortFunc(calls, func(a, b *liveCall) int { return strings.Compare(a.id, b.id) })
	data := []any{}
	for _, c := range calls {
		data = append(data, ls.callInfo(c))
	}
	return ok(map[string]any{"data": data})
}
