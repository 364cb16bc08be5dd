package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbx-bridge/pbx-bridge/bridge/fleet"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// ServiceName is the micro service name the bridge registers, as seen by
// `nats micro ls`.
const ServiceName = "pbx-bridge"

// SchemaHeader names the versioned schema of a reply body.
const SchemaHeader = "Pbx-Schema"

// Error codes of the request/reply API, sent as micro's
// Nats-Service-Error-Code header and, with their stable names, in the JSON
// error body (schema.ErrorReply).
const (
	codeBadRequest  = 400
	codeNotFound    = 404
	codeInternal    = 500
	codePBXError    = 502
	codeUnavailable = 503
)

var codeNames = map[int]string{
	codeBadRequest:  schema.ErrorBadRequest,
	codeNotFound:    schema.ErrorNotFound,
	codeInternal:    schema.ErrorInternal,
	codePBXError:    schema.ErrorPBX,
	codeUnavailable: schema.ErrorUnavailable,
}

// apiError is an error answer of the request/reply API.
type apiError struct {
	code int
	msg  string
	pbx  *pbx.APIError
	// retryAfter, when set, is sent as the Retry-After header (seconds):
	// the request will likely succeed then.
	retryAfter time.Duration
}

// RetryAfterHeader carries, on a 503, how many seconds to wait before
// asking again.
const RetryAfterHeader = "Retry-After"

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, a ...any) *apiError {
	return &apiError{code: codeBadRequest, msg: fmt.Sprintf(format, a...)}
}

// startService registers the micro service with one endpoint per API,
// each on a wildcard subject: one subscription serves every extension, and
// an extension this bridge does not serve gets a 404 rather than silence.
func (b *Bridge) startService() (micro.Service, error) {
	svc, err := micro.AddService(b.nc, micro.Config{
		Name:        ServiceName,
		Version:     b.cfg.Version,
		Description: "Yeastar PBX CDR queries and extension info over NATS",
		Metadata:    map[string]string{"subject_prefix": b.cfg.Prefix},
	})
	if err != nil {
		return nil, fmt.Errorf("micro service: %w", err)
	}
	for _, ep := range b.endpoints() {
		err := svc.AddEndpoint(ep.name, b.dispatch(ep.name, ep.schema, ep.handle),
			micro.WithEndpointSubject(ep.subject),
			micro.WithEndpointMetadata(map[string]string{"schema": ep.schema}))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("micro endpoint %s: %w", ep.name, err)
		}
	}
	if b.fleet.Load() != nil {
		// Any replica answers: each sees the whole fleet in the lease bucket.
		err := svc.AddEndpoint("fleet_status", micro.HandlerFunc(func(req micro.Request) {
			b.answer("fleet_status", schema.TypeFleetStatus, microReplier{req}, b.fleet.Load().Status(), nil)
		}), micro.WithEndpointSubject(b.subjects.fleetStatus()),
			micro.WithEndpointMetadata(map[string]string{"schema": schema.TypeFleetStatus}))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("micro endpoint fleet_status: %w", err)
		}
	}
	return svc, nil
}

// endpoint is one per-extension API of the service.
type endpoint struct {
	name, subject, schema string
	handle                handler
}

func (b *Bridge) endpoints() []endpoint {
	return append([]endpoint{
		{"cdr_query", b.subjects.requestFilters()[0], schema.TypeCDRQueryResult, b.cdrQuery},
		{"info", b.subjects.requestFilters()[1], schema.TypeInfo, b.info},
	}, b.callEndpoints()...)
}

// endpointOf returns the endpoint whose subject filter matches subject.
func (b *Bridge) endpointOf(subject string) (endpoint, bool) {
	for _, ep := range b.endpoints() {
		if subsetOf(subject, ep.subject) {
			return ep, true
		}
	}
	return endpoint{}, false
}

// A handler answers a request at once (reply or error), or returns a call
// to the PBX to run off the subscription's goroutine.
type handler func(x *extension, body []byte) (reply any, pbxCall func(context.Context) (any, error), err error)

// dispatch answers what needs no PBX (bad requests, unknown or offline
// extensions, info) on micro's goroutine, so that micro's stats count those
// requests and their errors. A PBX call runs on its own goroutine, at most
// MaxInflight at once, because micro calls a handler one request at a time
// and one slow PBX must not hold up every other extension; when all slots
// are busy the subscription waits (back-pressure) rather than queueing
// without bound. micro's Request may not be answered from another
// goroutine, so that answer is published directly to the reply subject,
// with the same headers micro would set.
func (b *Bridge) dispatch(name, schemaType string, handle handler) micro.HandlerFunc {
	return func(req micro.Request) {
		b.serveRequest(name, schemaType, handle, req.Subject(), req.Data(), req.Headers(), microReplier{req}, req.Reply())
	}
}

// serveRequest answers one request (see dispatch): now on the caller's
// goroutine with sync, or, for a PBX call, on its own with a direct reply.
// In a fleet, a request for an extension another replica owns is handed
// to that replica, which answers the requester directly.
func (b *Bridge) serveRequest(name, schemaType string, handle handler, subject string, data []byte, h micro.Headers, sync replier, reply string) {
	var answer any
	var call func(context.Context) (any, error)
	x, err := b.lookup(subject)
	var away *elsewhere
	if f := b.fleet.Load(); errors.As(err, &away) && f != nil && nats.Header(h).Get(fleet.ForwardedHeader) == "" {
		if f.Forward(subject, data, h, reply, away.ext) == nil {
			return // the owner answers; otherwise the extension is changing hands
		}
	}
	if err == nil {
		answer, call, err = handle(x, data)
	}
	if call == nil {
		b.answer(name, schemaType, sync, answer, err)
		return
	}
	b.inflight <- struct{}{}
	b.reqMu.Lock()
	if b.closing {
		b.reqMu.Unlock()
		<-b.inflight
		b.answer(name, schemaType, sync, nil, &apiError{code: codeUnavailable, msg: "the bridge is shutting down"})
		return
	}
	b.wg.Add(1)
	b.reqMu.Unlock()
	to := directReplier{nc: b.nc, subject: reply}
	go func() {
		defer func() { <-b.inflight; b.wg.Done() }()
		bound, cancelBound := b.cancelReqs.Bind(context.Background())
		defer cancelBound()
		ctx, cancel := context.WithTimeout(bound, b.cfg.RequestTimeout)
		defer cancel()
		answer, err := call(ctx)
		b.answer(name, schemaType, to, answer, err)
	}()
}

// replier sends one answer: a body with headers, or a micro error.
type replier interface {
	respond(body []byte, headers micro.Headers) error
	fail(code, description string, body []byte, headers micro.Headers) error
}

type microReplier struct{ req micro.Request }

func (r microReplier) respond(body []byte, h micro.Headers) error {
	return r.req.Respond(body, micro.WithHeaders(h))
}

func (r microReplier) fail(code, description string, body []byte, h micro.Headers) error {
	return r.req.Error(code, description, body, micro.WithHeaders(h))
}

type directReplier struct {
	nc      *nats.Conn
	subject string
}

func (r directReplier) respond(body []byte, h micro.Headers) error {
	if r.subject == "" {
		return nil // a publish, not a request: nobody to answer
	}
	return r.nc.PublishMsg(&nats.Msg{Subject: r.subject, Data: body, Header: nats.Header(h)})
}

func (r directReplier) fail(code, description string, body []byte, h micro.Headers) error {
	all := nats.Header{micro.ErrorHeader: {description}, micro.ErrorCodeHeader: {code}}
	for k, v := range h {
		all[k] = v
	}
	return r.respond(body, micro.Headers(all))
}

func (b *Bridge) answer(name, schemaType string, to replier, reply any, err error) {
	if err == nil {
		body, merr := json.Marshal(reply)
		if merr == nil {
			b.metrics.answered(name, "200")
			if rerr := to.respond(body, micro.Headers{SchemaHeader: []string{schemaType}}); rerr != nil {
				b.cfg.Logger.Warn("reply failed", "endpoint", name, "err", rerr)
			}
			return
		}
		err = merr
	}
	var ae *apiError
	var away *elsewhere
	switch {
	case errors.As(err, &away):
		ae = changingHands(away.ext)
	case !errors.As(err, &ae):
		ae = &apiError{code: codeInternal, msg: err.Error()}
	}
	body := schema.ErrorReply{Code: ae.code, Error: codeNames[ae.code], Message: ae.msg}
	if ae.pbx != nil {
		body.PBXErrCode, body.PBXErrMsg = ae.pbx.ErrCode, ae.pbx.ErrMsg
	}
	data, _ := json.Marshal(body)
	code := strconv.Itoa(ae.code)
	b.metrics.answered(name, code)
	hdr := micro.Headers{SchemaHeader: []string{schema.TypeError}}
	if ae.retryAfter > 0 {
		hdr[RetryAfterHeader] = []string{strconv.Itoa(int(max(ae.retryAfter.Round(time.Second), time.Second).Seconds()))}
	}
	if rerr := to.fail(code, ae.msg, data, hdr); rerr != nil {
		b.cfg.Logger.Warn("error reply failed", "endpoint", name, "err", rerr)
	}
}

func (b *Bridge) lookup(subject string) (*extension, error) {
	ext, ok := b.subjects.extOf(subject)
	if !ok {
		return nil, &apiError{code: codeNotFound, msg: "no extension in subject " + strconv.Quote(subject)}
	}
	x := b.set.get(ext)
	switch {
	case x != nil:
		return x, nil
	case b.fleet.Load() != nil && b.set.wanted(ext):
		return nil, &elsewhere{ext: ext}
	}
	return nil, &apiError{code: codeNotFound, msg: "extension " + strconv.Quote(ext) + " is not served by this bridge"}
}

// elsewhere is a request for an extension of the fleet that another
// replica serves, or none at the moment (it is changing hands).
type elsewhere struct{ ext string }

func (e *elsewhere) Error() string { return "extension " + e.ext + " is served by another replica" }

// changingHands is the answer for an extension of the fleet that no live
// replica serves at the moment.
func changingHands(ext string) *apiError {
	return &apiError{code: codeUnavailable, retryAfter: time.Second,
		msg: "extension " + ext + " is changing hands between replicas; retry in a second"}
}

// cdrQueryRequest is the SDK's cdrQuery parameters; pointers tell an omitted
// field (the SDK's default) from a zero.
type cdrQueryRequest struct {
	Page    *float64 `json:"page"`
	Size    *float64 `json:"size"`
	Status  *float64 `json:"status"`
	SortBy  *string  `json:"sortBy"`
	OrderBy *string  `json:"orderBy"`
	Filter  *string  `json:"filter"`
}

// cdrQueryMembers are the members of a cdrQueryRequest, by their JSON names.
var cdrQueryMembers = map[string]bool{"page": true, "size": true, "status": true, "sortBy": true, "orderBy": true, "filter": true}

// parseCDRQuery reads a request body into a query with the SDK's defaults.
// The rules of a valid query live in one place, pbx.CDRQuery.Validate (the
// JSON Schema cdr.query.request documents them, and a test holds the two
// together): what breaks one is a 400 here, never a 502 from the PBX.
func parseCDRQuery(body []byte) (pbx.CDRQuery, error) {
	q := pbx.CDRQuery{Page: pbx.DefaultCDRPage, Size: pbx.DefaultCDRSize, SortBy: pbx.DefaultCDRSortBy, OrderBy: pbx.DefaultCDROrderBy}
	if len(bytes.TrimSpace(body)) == 0 {
		return q, nil
	}
	var members map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&members); err != nil || members == nil {
		return q, badRequest("malformed request: not a JSON object")
	}
	if dec.More() {
		return q, badRequest("malformed request: trailing data after the JSON object")
	}
	// Member names match exactly, as the schema's (encoding/json would take
	// "PAGE" for "page").
	for name := range members {
		if !cdrQueryMembers[name] {
			return q, badRequest("malformed request: unknown member %q", name)
		}
	}
	var r cdrQueryRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return q, badRequest("malformed request: %v", err)
	}
	// Numbers are read as JSON Schema's "integer" reads them: 2.0 is 2.
	for _, f := range []struct {
		name string
		v    *float64
		dst  *int
	}{{"page", r.Page, &q.Page}, {"size", r.Size, &q.Size}, {"status", r.Status, (*int)(&q.Status)}} {
		if f.v == nil {
			continue
		}
		if *f.v != math.Trunc(*f.v) || math.Abs(*f.v) > math.MaxInt32 {
			return q, badRequest("%s must be a whole number, got %v", f.name, *f.v)
		}
		*f.dst = int(*f.v)
	}
	if r.SortBy != nil {
		q.SortBy = *r.SortBy
	}
	if r.OrderBy != nil {
		q.OrderBy = *r.OrderBy
	}
	if r.Filter != nil && *r.Filter != "" {
		q.Filter = r.Filter
	}
	if err := q.Validate(); err != nil {
		return q, badRequest("%v", err)
	}
	return q, nil
}

func (b *Bridge) cdrQuery(x *extension, body []byte) (any, func(context.Context) (any, error), error) {
	q, err := parseCDRQuery(body)
	if err != nil {
		return nil, nil, err
	}
	sess, err := x.onlineSession()
	if err != nil {
		return nil, nil, err
	}
	return nil, func(ctx context.Context) (any, error) {
		res, err := sess.CDRQuery(ctx, q)
		if err != nil {
			return nil, pbxFailure(err)
		}
		records := res.Records
		if records == nil {
			records = []schema.CDR{} // the schema wants a list
		}
		return schema.CDRQueryResult{ErrCode: res.ErrCode, ErrMsg: res.ErrMsg, TotalNumber: res.TotalNumber, Records: records}, nil
	}, nil
}

// pbxFailure maps an error of a PBX call to the API's codes.
func pbxFailure(err error) error {
	var ae *pbx.APIError
	switch {
	case errors.As(err, &ae):
		return &apiError{code: codePBXError, msg: "the PBX answered with an error: " + ae.Error(), pbx: ae}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{code: codePBXError, msg: "the PBX did not answer in time"}
	default:
		return &apiError{code: codePBXError, msg: "the PBX could not be reached: " + err.Error()}
	}
}

func (b *Bridge) info(x *extension, _ []byte) (any, func(context.Context) (any, error), error) {
	return x.infoReply(), nil, nil
}
