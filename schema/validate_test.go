package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestStructsValidAgainstTheirSchemas(t *testing.T) {
	for _, c := range eventData {
		t.Run(c.typ, func(t *testing.T) {
			doc := testEvent(t, c.typ, c.data)
			if err := Validate(c.typ, doc); err != nil {
				t.Fatalf("Validate: %v\n%s", err, doc)
			}
			if err := ValidateEvent(doc); err != nil {
				t.Fatalf("ValidateEvent: %v", err)
			}
			if err := Validate(TypeEnvelope, doc); err != nil {
				t.Fatalf("Validate(envelope): %v", err)
			}
		})
	}
	for _, c := range bodies {
		t.Run(c.typ, func(t *testing.T) {
			doc, err := json.Marshal(c.body)
			if err != nil {
				t.Fatal(err)
			}
			if err := Validate(c.typ, doc); err != nil {
				t.Fatalf("Validate: %v\n%s", err, doc)
			}
		})
	}
}

func TestEveryTypeHasAFixture(t *testing.T) {
	docs := testDocs(t)
	for _, typ := range Types() {
		if _, ok := docs[typ]; !ok {
			t.Errorf("no valid document of %s among the fixtures", typ)
		}
	}
}

// TestUnknownFieldsAccepted keeps the contract open for additive evolution:
// a consumer validating with v1 must accept a producer's newer optional fields.
func TestUnknownFieldsAccepted(t *testing.T) {
	docs := testDocs(t)
	for _, typ := range Types() {
		switch typ {
		case TypeCDRQueryRequest, TypeCallDialRequest, TypeCallActionRequest, TypeCallTransferRequest:
			continue // closed on purpose: a misspelt parameter is a bad request
		}
		path := "added_later"
		if IsEventType(typ) {
			path = "data/added_later"
		}
		doc := mutate(t, docs[typ], path, map[string]any{"any": []any{1, "shape"}})
		if IsEventType(typ) {
			doc = mutate(t, doc, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		}
		if err := Validate(typ, doc); err != nil {
			t.Errorf("%s with an unknown field: %v", typ, err)
		}
	}
}

func TestInvalidDocumentsRejected(t *testing.T) {
	docs := testDocs(t)
	cases := []struct {
		name string
		typ  string
		path string // slash-separated; the last element is set or deleted
		val  any    // del deletes
		want string // in the problem list
		at   string // the problem's location
	}{
		// the envelope, through any event type
		{"no id", TypeCDRChanged, "id", del, "missing property 'id'", ""},
		{"empty id", TypeCDRChanged, "id", "", "minLength", "/id"},
		{"old specversion", TypeCDRChanged, "specversion", "0.3", "value must be '", "/specversion"},
		{"time not RFC 3339", TypeCDRChanged, "time", "12 June 2023", "date-time", "/time"},
		{"time a number", TypeCDRChanged, "time", 1686561699, "want string", "/time"},
		{"other content type", TypeCDRCreated, "datacontenttype", "text/plain", "value must be '", "/datacontenttype"},
		{"type of another event", TypeCDRChanged, "type", TypeCDRCreated, "value must be '", "/type"},
		{"dataschema of another event", TypeCDRChanged, "dataschema", SchemaID(TypeCDRCreated), "value must be '", "/dataschema"},
		{"no data", TypeCallMissed, "data", del, "missing property 'data'", ""},
		{"data an array", TypeCallMissed, "data", []any{}, "want object", "/data"},
		{"envelope without subject", TypeEnvelope, "subject", del, "missing property 'subject'", ""},
		{"envelope with a bad type", TypeEnvelope, "type", "com.example.other", "pattern", "/type"},
		// cdr.changed
		{"no personal_cdr", TypeCDRChanged, "data/personal_cdr", del, "missing property 'personal_cdr'", "/data"},
		{"timestamp a string", TypeCDRChanged, "data/personal_cdr/timestamp", "1693201380", "want integer", "/data/personal_cdr/timestamp"},
		{"no extension number", TypeCDRChanged, "data/extension/number", del, "missing property 'number'", "/data/extension"},
		{"extension id a string", TypeCDRChanged, "data/extension/id", "25", "want integer", "/data/extension/id"},
		{"empty pbx", TypeCDRChanged, "data/pbx", "", "minLength", "/data/pbx"},
		// cdr.created
		{"status out of range", TypeCDRCreated, "data/record/status", 4, "maximum", "/data/record/status"},
		{"record without uniqueid", TypeCDRCreated, "data/record/uniqueid", del, "missing property 'uniqueid'", "/data/record"},
		{"record extension without ext_num", TypeCDRCreated, "data/record/extension/ext_num", del, "missing property 'ext_num'", "/data/record/extension"},
		{"negative talk duration", TypeCDRCreated, "data/record/talk_duration", -1, "minimum", "/data/record/talk_duration"},
		// call.missed
		{"missed time not a time", TypeCallMissed, "data/time", "yesterday", "date-time", "/data/time"},
		{"cdr_id a string", TypeCallMissed, "data/cdr_id", "2547", "want integer", "/data/cdr_id"},
		{"missed without record", TypeCallMissed, "data/record", del, "missing property 'record'", "/data"},
		// session.state
		{"unknown state", TypeSessionState, "data/state", "sleeping", "must be one of", "/data/state"},
		{"no previous", TypeSessionState, "data/previous", del, "missing property 'previous'", "/data"},
		{"positive code", TypeSessionState, "data/code", 5, "maximum", "/data/code"},
		// runtime.error
		{"code above range", TypeRuntimeError, "data/code", -99, "maximum", "/data/code"},
		{"code below range", TypeRuntimeError, "data/code", -111, "minimum", "/data/code"},
		{"unknown runtime name", TypeRuntimeError, "data/name", "UNKNOWN_ERROR", "must be one of", "/data/name"},
		{"unknown action", TypeRuntimeError, "data/action", "retry", "must be one of", "/data/action"},
		// notify
		{"no msg", TypeNotify, "data/msg", del, "missing property 'msg'", "/data"},
		{"notification type a string", TypeNotify, "data/notification_type", "20048", "want integer", "/data/notification_type"},
		// cdr.query.request
		{"page 0", TypeCDRQueryRequest, "page", 0, "minimum", "/page"},
		{"size 101", TypeCDRQueryRequest, "size", 101, "maximum", "/size"},
		{"size 0", TypeCDRQueryRequest, "size", 0, "minimum", "/size"},
		{"status 4", TypeCDRQueryRequest, "status", 4, "maximum", "/status"},
		{"sort by name", TypeCDRQueryRequest, "sortBy", "name", "must be one of", "/sortBy"},
		{"order upward", TypeCDRQueryRequest, "orderBy", "up", "must be one of", "/orderBy"},
		{"filter a number", TypeCDRQueryRequest, "filter", 1011, "want null or string", "/filter"},
		{"unknown parameter", TypeCDRQueryRequest, "limit", 10, "additional properties 'limit'", ""},
		{"page fractional", TypeCDRQueryRequest, "page", 1.5, "want integer", "/page"},
		// cdr.query.result
		{"list null", TypeCDRQueryResult, "personal_cdr_list", nil, "want array", "/personal_cdr_list"},
		{"list item not a record", TypeCDRQueryResult, "personal_cdr_list", []any{"2546"}, "want object", "/personal_cdr_list/0"},
		{"negative total", TypeCDRQueryResult, "total_number", -1, "minimum", "/total_number"},
		// info
		{"info unknown state", TypeInfo, "state", "up", "must be one of", "/state"},
		{"info without since", TypeInfo, "since", del, "missing property 'since'", ""},
		// error
		{"teapot code", TypeError, "code", 418, "must be one of", "/code"},
		{"unknown error name", TypeError, "error", "teapot", "must be one of", "/error"},
		{"no message", TypeError, "message", del, "missing property 'message'", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := mutate(t, docs[c.typ], c.path, c.val)
			err := Validate(c.typ, doc)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate(%s) = %v, want a *ValidationError\n%s", c.typ, err, doc)
			}
			if ve.Type != c.typ {
				t.Errorf("Type = %q, want %q", ve.Type, c.typ)
			}
			found := false
			for _, p := range ve.Problems {
				if p.Location == c.at && strings.Contains(p.Message, c.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem %q at %q in %v", c.want, c.at, ve)
			}
			if IsEventType(c.typ) {
				if err := ValidateEvent(doc); err == nil {
					t.Errorf("ValidateEvent accepted it")
				}
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	docs := testDocs(t)
	cases := []struct {
		name    string
		err     error
		unknown bool   // wraps ErrUnknownType
		want    string // in the message
	}{
		{"unknown type", Validate("com.yeastar.pbx.cdr.changed.v2", docs[TypeCDRChanged]), true, `"com.yeastar.pbx.cdr.changed.v2"`},
		{"not JSON", Validate(TypeInfo, []byte(`{"extension":`)), false, "not JSON"},
		{"two documents", Validate(TypeInfo, append(docs[TypeInfo], docs[TypeInfo]...)), false, "not JSON"},
		{"event not JSON", ValidateEvent([]byte("heartbeat")), false, "not a JSON object"},
		{"event without type", ValidateEvent([]byte(`{"id":"1"}`)), false, "no type"},
		{"event of unknown type", ValidateEvent([]byte(`{"type":"com.yeastar.pbx.call.started.v1"}`)), true, "call.started"},
		{"body as event", ValidateEvent(mutate(t, docs[TypeInfo], "type", TypeInfo)), false, "not an event type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(c.err, ErrUnknownType); got != c.unknown {
				t.Errorf("errors.Is(ErrUnknownType) = %v, want %v (%v)", got, c.unknown, c.err)
			}
			if !strings.Contains(c.err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", c.err, c.want)
			}
		})
	}
}

func TestValidationErrorMessage(t *testing.T) {
	doc := mutate(t, testDocs(t)[TypeCDRChanged], "data/extension/number", del)
	err := Validate(TypeCDRChanged, doc)
	want := "schema: invalid com.yeastar.pbx.cdr.changed.v1 document: at /data/extension: missing property 'number'"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

// del, as a mutate value, deletes the member.
var del = &struct{ delete bool }{true}

// mutate returns doc with the member at path (slash-separated object keys)
// set to val, or deleted when val is del.
func mutate(t *testing.T, doc []byte, path string, val any) []byte {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal(doc, &root); err != nil {
		t.Fatalf("mutate: %v", err)
	}
	keys := strings.Split(path, "/")
	m := root
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			t.Fatalf("mutate: no object at %q in %s", k, doc)
		}
		m = next
	}
	last := keys[len(keys)-1]
	if val == del {
		if _, ok := m[last]; !ok {
			t.Fatalf("mutate: nothing to delete at %q", path)
		}
		delete(m, last)
	} else {
		m[last] = val
	}
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatalf("mutate: %v", err)
	}
	return out
}

// TestUnknownDispositionIsValid: a value a newer PBX introduces must not
// make a call record invalid (the bridge passes it on as is).
func TestUnknownDispositionIsValid(t *testing.T) {
	for _, typ := range []string{TypeCDRCreated, TypeCallMissed} {
		doc := testDocs(t)[typ]
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		rec := m["data"].(map[string]any)["record"].(map[string]any)
		rec["disposition"] = "CONGESTION"
		b, _ := json.Marshal(m)
		if err := Validate(typ, b); err != nil {
			t.Errorf("%s with disposition CONGESTION: %v", typ, err)
		}
	}
}
