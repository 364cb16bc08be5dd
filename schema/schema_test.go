package schema

import (
	"encoding/json"
	"io/fs"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestTypesMatchEmbeddedFiles(t *testing.T) {
	embedded, err := fs.Glob(files, "v*/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, typ := range Types() {
		named = append(named, fileName(typ))
	}
	slices.Sort(embedded)
	slices.Sort(named)
	if !slices.Equal(embedded, named) {
		t.Errorf("embedded files %v, types name %v", embedded, named)
	}
	for _, f := range embedded {
		var doc struct {
			Schema string `json:"$schema"`
			ID     string `json:"$id"`
			Title  string `json:"title"`
		}
		b, _ := files.ReadFile(f)
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		typ := strings.TrimPrefix(doc.ID, SchemaIDPrefix)
		if doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %q, want draft 2020-12", f, doc.Schema)
		}
		if fileName(typ) != f {
			t.Errorf("%s: $id %q names file %s", f, doc.ID, fileName(typ))
		}
		if !strings.HasSuffix(typ, "."+path.Dir(f)) {
			t.Errorf("%s: type %s is not of version %s", f, typ, path.Dir(f))
		}
	}
}

func TestTypes(t *testing.T) {
	got := Types()
	if !slices.IsSorted(got) {
		t.Errorf("Types() not sorted: %v", got)
	}
	all := []string{
		TypeCDRChanged, TypeCDRCreated, TypeCallMissed, TypeSessionState, TypeRuntimeError, TypeNotify,
		TypeCDRQueryRequest, TypeCDRQueryResult, TypeInfo, TypeError, TypeFleetStatus, TypeEnvelope,
		TypeCallRinging, TypeCallAnswered, TypeCallHeld, TypeCallResumed, TypeCallEnded,
		TypePresenceChanged, TypeRegistrationChanged, TypeCallStatusChanged, TypeCDREnded,
		TypeSystemInfo, TypeSystemWarning, TypeSystemAlert,
		TypeCallDialRequest, TypeCallDialResult, TypeCallActionRequest, TypeCallTransferRequest,
		TypeCallActionResult, TypeCallListResult,
	}
	slices.Sort(all)
	if !slices.Equal(got, all) {
		t.Errorf("Types() = %v, want %v", got, all)
	}
	events := 0
	for _, typ := range got {
		if IsEventType(typ) {
			events++
		}
	}
	if events != 18 || IsEventType(TypeEnvelope) || IsEventType(TypeInfo) || IsEventType("") {
		t.Errorf("IsEventType: %d event types, want 18 (the CloudEvents types only)", events)
	}
}

func TestFileName(t *testing.T) {
	for typ, want := range map[string]string{
		TypeCDRChanged:                   "v1/cdr.changed.json",
		TypeCDRQueryRequest:              "v1/cdr.query.request.json",
		TypeEnvelope:                     "v1/envelope.json",
		"com.yeastar.pbx.cdr.changed.v2": "v2/cdr.changed.json",
	} {
		if got := fileName(typ); got != want {
			t.Errorf("fileName(%s) = %s, want %s", typ, got, want)
		}
	}
}

func TestSchemaFile(t *testing.T) {
	b, ok := SchemaFile(TypeCallMissed)
	if !ok || !json.Valid(b) || !strings.Contains(string(b), `"$id": "urn:pbx-bridge:schema:com.yeastar.pbx.call.missed.v1"`) {
		t.Fatalf("SchemaFile(%s) = %.80s, %v", TypeCallMissed, b, ok)
	}
	b[0] = 'x'
	if again, _ := SchemaFile(TypeCallMissed); again[0] != '{' {
		t.Error("SchemaFile returned shared bytes")
	}
	for _, typ := range []string{"", "com.yeastar.pbx.cdr.changed.v2", "cdr.changed", "../v1/cdr.changed"} {
		if b, ok := SchemaFile(typ); ok || b != nil {
			t.Errorf("SchemaFile(%q) = %d bytes, %v", typ, len(b), ok)
		}
	}
}

// TestSharedDefinitionsAgree: the files are self-contained, so a shape used
// by several (the CDR record, the extension reference) is written in each;
// it must be written the same everywhere.
func TestSharedDefinitionsAgree(t *testing.T) {
	first := map[string]any{}
	from := map[string]string{}
	for _, typ := range Types() {
		var doc struct {
			Defs map[string]any `json:"$defs"`
		}
		b, _ := SchemaFile(typ)
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		for name, def := range doc.Defs {
			if prev, ok := first[name]; !ok {
				first[name], from[name] = def, typ
			} else if !reflect.DeepEqual(prev, def) {
				t.Errorf("$defs/%s differs between %s and %s", name, from[name], typ)
			}
		}
	}
	for _, name := range []string{"extension_ref", "cdr", "cdr_extension", "disposition", "session_state"} {
		if _, ok := first[name]; !ok {
			t.Errorf("no $defs/%s in any schema", name)
		}
	}
}

// TestGoConstantsMatchSchemas keeps the Go constants and the schema enums in
// step: every constant is allowed, and every allowed value has a constant.
func TestGoConstantsMatchSchemas(t *testing.T) {
	cases := []struct {
		typ     string
		pointer []string
		consts  []any
	}{
		{TypeCDRCreated, []string{"$defs", "disposition", "examples"}, []any{DispositionAnswered, DispositionNoAnswer, DispositionBusy, DispositionFailed, DispositionVoicemail}},
		{TypeSessionState, []string{"$defs", "session_state", "enum"}, []any{StateConnecting, StateOnline, StateReconnecting, StateOffline, StateStopped}},
		{TypeSessionState, []string{"properties", "previous", "enum"}, []any{"", StateConnecting, StateOnline, StateReconnecting, StateOffline, StateStopped}},
		{TypeRuntimeError, []string{"properties", "name", "enum"}, []any{RuntimeLinkusDisabled, RuntimeLoggedInElsewhere, RuntimeExtensionDeleted, RuntimeReLogin, RuntimeSDKPlanDisabled}},
		{TypeRuntimeError, []string{"properties", "action", "enum"}, []any{ActionStopped, ActionRelogin}},
		{TypeError, []string{"properties", "error", "enum"}, []any{ErrorBadRequest, ErrorNotFound, ErrorInternal, ErrorPBX, ErrorUnavailable}},
	}
	for _, c := range cases {
		b, _ := SchemaFile(c.typ)
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		for _, k := range c.pointer {
			v = v.(map[string]any)[k]
		}
		enum := v.([]any)
		for _, want := range c.consts {
			if !slices.Contains(enum, want) {
				t.Errorf("%s %v lacks %q", c.typ, c.pointer, want)
			}
		}
		if len(enum) != len(c.consts) {
			t.Errorf("%s %v = %v, constants %v", c.typ, c.pointer, enum, c.consts)
		}
	}

	// The error names and codes pair as the schema's description says.
	var codes []any
	for _, name := range []string{ErrorBadRequest, ErrorNotFound, ErrorInternal, ErrorPBX, ErrorUnavailable} {
		code, ok := ErrorCode(name)
		if !ok {
			t.Errorf("ErrorCode(%s) unknown", name)
		}
		codes = append(codes, float64(code))
		doc, _ := json.Marshal(ErrorReply{Code: code, Error: name, Message: "m"})
		if err := Validate(TypeError, doc); err != nil {
			t.Errorf("%s/%d: %v", name, code, err)
		}
	}
	b, _ := SchemaFile(TypeError)
	var doc struct {
		Properties struct {
			Code struct {
				Enum []any `json:"enum"`
			} `json:"code"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(codes, func(a, b any) int { return int(a.(float64) - b.(float64)) })
	if !reflect.DeepEqual(codes, doc.Properties.Code.Enum) {
		t.Errorf("ErrorCode gives %v, the schema allows %v", codes, doc.Properties.Code.Enum)
	}
	if _, ok := ErrorCode("teapot"); ok {
		t.Error("ErrorCode(teapot) known")
	}
}

func TestCompileOnce(t *testing.T) {
	a, err := compiled()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := compiled()
	if reflect.ValueOf(a).Pointer() != reflect.ValueOf(b).Pointer() {
		t.Error("schemas compiled twice")
	}
	if len(a) != len(Types()) {
		t.Errorf("%d compiled schemas, %d types", len(a), len(Types()))
	}
}
