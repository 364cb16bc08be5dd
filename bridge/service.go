package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/micro"

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
}

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
	endpoints := []struct {
		name, subject, schema string
		handle                func(context.Context, *extension, []byte) (any, error)
	}{
		{"cdr_query", b.cfg.Prefix + ".*.cdr.query", schema.TypeCDRQueryResult, b.cdrQuery},
		{"info", b.cfg.Prefix + ".*.info", schema.TypeInfo, b.info},
	}
	for _, ep := range endpoints {
		err := svc.AddEndpoint(ep.name, b.dispatch(ep.name, ep.schema, ep.handle),
			micro.WithEndpointSubject(ep.subject),
			micro.WithEndpointMetadata(map[string]string{"schema": ep.schema}))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("micro endpoint %s: %w", ep.name, err)
		}
	}
	return svc, nil
}

// dispatch answers each request on its own goroutine, at most MaxInflight at
// once: micro calls handlers one at a time per endpoint, and one slow PBX
// must not hold up the others. When all slots are busy the subscription
// waits (back-pressure) rather than queueing without bound.
func (b *Bridge) dispatch(name, schemaType string, handle func(context.Context, *extension, []byte) (any, error)) micro.HandlerFunc {
	return func(req micro.Request) {
		b.inflight <- struct{}{}
		b.wg.Add(1)
		go func() {
			defer func() { <-b.inflight; b.wg.Done() }()
			b.answer(name, schemaType, req, handle)
		}()
	}
}

func (b *Bridge) answer(name, schemaType string, req micro.Request, handle func(context.Context, *extension, []byte) (any, error)) {
	var reply any
	x, err := b.lookup(req.Subject())
	if err == nil {
		ctx, cancel := context.WithTimeout(b.reqCtx, b.cfg.RequestTimeout)
		reply, err = handle(ctx, x, req.Data())
		cancel()
	}
	if err == nil {
		body, merr := json.Marshal(reply)
		if merr == nil {
			b.metrics.answered(name, "200")
			if rerr := req.Respond(body, micro.WithHeaders(micro.Headers{SchemaHeader: []string{schemaType}})); rerr != nil {
				b.cfg.Logger.Warn("reply failed", "endpoint", name, "err", rerr)
			}
			return
		}
		err = merr
	}
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{code: codeInternal, msg: err.Error()}
	}
	body := schema.ErrorReply{Code: ae.code, Error: codeNames[ae.code], Message: ae.msg}
	if ae.pbx != nil {
		body.PBXErrCode, body.PBXErrMsg = ae.pbx.ErrCode, ae.pbx.ErrMsg
	}
	data, _ := json.Marshal(body)
	code := strconv.Itoa(ae.code)
	b.metrics.answered(name, code)
	if rerr := req.Error(code, ae.msg, data, micro.WithHeaders(micro.Headers{SchemaHeader: []string{schema.TypeError}})); rerr != nil {
		b.cfg.Logger.Warn("error reply failed", "endpoint", name, "err", rerr)
	}
}

func (b *Bridge) lookup(subject string) (*extension, error) {
	ext, ok := b.subjects.extOf(subject)
	if !ok {
		return nil, &apiError{code: codeNotFound, msg: "no extension in subject " + strconv.Quote(subject)}
	}
	x, ok := b.exts[ext]
	if !ok {
		return nil, &apiError{code: codeNotFound, msg: "extension " + strconv.Quote(ext) + " is not served by this bridge"}
	}
	return x, nil
}

// cdrQueryRequest is the SDK's cdrQuery parameters; pointers tell an omitted
// field (the SDK's default) from a zero.
type cdrQueryRequest struct {
	Page    *int    `json:"page"`
	Size    *int    `json:"size"`
	Status  *int    `json:"status"`
	SortBy  *string `json:"sortBy"`
	OrderBy *string `json:"orderBy"`
	Filter  *string `json:"filter"`
}

// parseCDRQuery reads a request body into a query with the SDK's defaults,
// rejecting what the PBX would not understand.
func parseCDRQuery(body []byte) (pbx.CDRQuery, error) {
	q := pbx.CDRQuery{Page: pbx.DefaultCDRPage, Size: pbx.DefaultCDRSize, SortBy: pbx.DefaultCDRSortBy, OrderBy: pbx.DefaultCDROrderBy}
	if len(bytes.TrimSpace(body)) == 0 {
		return q, nil
	}
	var r cdrQueryRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return q, badRequest("malformed request: %v", err)
	}
	if dec.More() {
		return q, badRequest("malformed request: trailing data after the JSON object")
	}
	if r.Page != nil {
		if *r.Page < 1 {
			return q, badRequest("page must be >= 1, got %d", *r.Page)
		}
		q.Page = *r.Page
	}
	if r.Size != nil {
		if *r.Size < 1 || *r.Size > pbx.MaxCDRSize {
			return q, badRequest("size must be within 1..%d, got %d", pbx.MaxCDRSize, *r.Size)
		}
		q.Size = *r.Size
	}
	if r.Status != nil {
		if *r.Status < int(pbx.StatusAll) || *r.Status > int(pbx.StatusOutgoing) {
			return q, badRequest("status must be 0 (all), 1 (incoming), 2 (missed) or 3 (outgoing), got %d", *r.Status)
		}
		q.Status = pbx.CDRStatus(*r.Status)
	}
	if r.SortBy != nil {
		if *r.SortBy != "time" && *r.SortBy != "id" {
			return q, badRequest(`sortBy must be "time" or "id", got %q`, *r.SortBy)
		}
		q.SortBy = *r.SortBy
	}
	if r.OrderBy != nil {
		if *r.OrderBy != "desc" && *r.OrderBy != "asc" {
			return q, badRequest(`orderBy must be "desc" or "asc", got %q`, *r.OrderBy)
		}
		q.OrderBy = *r.OrderBy
	}
	if r.Filter != nil && *r.Filter != "" {
		if len(*r.Filter) > 64 {
			return q, badRequest("filter is longer than 64 characters")
		}
		q.Filter = r.Filter
	}
	return q, nil
}

func (b *Bridge) cdrQuery(ctx context.Context, x *extension, body []byte) (any, error) {
	q, err := parseCDRQuery(body)
	if err != nil {
		return nil, err
	}
	sess, err := x.onlineSession()
	if err != nil {
		return nil, err
	}
	res, err := sess.CDRQuery(ctx, q)
	if err != nil {
		return nil, pbxFailure(err)
	}
	out := schema.CDRQueryResult{ErrCode: res.ErrCode, ErrMsg: res.ErrMsg, TotalNumber: res.TotalNumber,
		Records: make([]schema.CDR, len(res.Records))}
	for i, r := range res.Records {
		out.Records[i] = toSchemaCDR(r)
	}
	return out, nil
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

func (b *Bridge) info(_ context.Context, x *extension, body []byte) (any, error) {
	return x.infoReply(), nil
}
