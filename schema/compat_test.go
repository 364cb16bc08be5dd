package schema

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The published contract is frozen in testdata/published/<version>/: a copy
// of every schema file as it was released. The current schema of each must
// stay backward compatible with it: a document valid against the published
// schema stays valid, and every field a consumer reads keeps its name and
// type. See README.md for the rule; this is the guard.

func TestPublishedTypesStillExist(t *testing.T) {
	for typ, file := range published(t) {
		if _, ok := SchemaFile(typ); !ok {
			t.Errorf("published type %s (%s) no longer exists: retire a type only after its deprecation period, removing its published copy with it", typ, file)
		}
	}
}

func TestPublishedSchemasBackwardCompatible(t *testing.T) {
	for typ, file := range published(t) {
		t.Run(typ, func(t *testing.T) {
			cur, ok := SchemaFile(typ)
			if !ok {
				t.Skip("reported by TestPublishedTypesStillExist")
			}
			old, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range compatFindings(t, old, cur) {
				t.Errorf("%s: %s (an incompatible change needs a new version beside this one)", typ, f)
			}
		})
	}
}

// TestEveryTypePublished: a type without a frozen copy has no guard.
func TestEveryTypePublished(t *testing.T) {
	pub := published(t)
	for _, typ := range Types() {
		if _, ok := pub[typ]; !ok {
			t.Errorf("%s has no frozen copy: copy %s to testdata/published/%s when it is released", typ, fileName(typ), fileName(typ))
		}
	}
}

// published maps each frozen type to its file.
func published(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "published", "v*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no published schemas in testdata/published")
	}
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			ID string `json:"$id"`
		}
		if err := json.Unmarshal(b, &doc); err != nil || !strings.HasPrefix(doc.ID, SchemaIDPrefix) {
			t.Fatalf("%s: no $id %s<type> (%v)", p, SchemaIDPrefix, err)
		}
		out[strings.TrimPrefix(doc.ID, SchemaIDPrefix)] = p
	}
	return out
}

// TestCompatCheckerFindsBreaks feeds the checker incompatible pairs: a guard
// that cannot fail guards nothing.
func TestCompatCheckerFindsBreaks(t *testing.T) {
	cases := []struct {
		name     string
		old, cur string
		want     string // in a finding; "" = compatible
	}{
		{"property removed",
			`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}`,
			`{"type":"object","properties":{"a":{"type":"string"}}}`,
			"/properties/b: property removed"},
		{"property renamed",
			`{"type":"object","properties":{"caller_id":{"type":"string"}}}`,
			`{"type":"object","properties":{"callerid":{"type":"string"}}}`,
			"/properties/caller_id: property removed"},
		{"type changed",
			`{"type":"object","properties":{"id":{"type":"integer"}}}`,
			`{"type":"object","properties":{"id":{"type":"string"}}}`,
			"/properties/id: type changed from integer to string"},
		{"type made nullable",
			`{"properties":{"id":{"type":"integer"}}}`,
			`{"properties":{"id":{"type":["integer","null"]}}}`,
			"type changed"},
		{"type added",
			`{"properties":{"msg":{}}}`,
			`{"properties":{"msg":{"type":"object"}}}`,
			"/properties/msg: type added"},
		{"required grown",
			`{"required":["a"],"properties":{"a":{},"b":{}}}`,
			`{"required":["a","b"],"properties":{"a":{},"b":{}}}`,
			"/required: b now required"},
		{"enum narrowed",
			`{"properties":{"d":{"enum":["ANSWERED","BUSY"]}}}`,
			`{"properties":{"d":{"enum":["ANSWERED"]}}}`,
			`/properties/d/enum: "BUSY" no longer allowed`},
		{"enum added",
			`{"properties":{"d":{"type":"string"}}}`,
			`{"properties":{"d":{"type":"string","enum":["x"]}}}`,
			"/properties/d: enum added"},
		{"const added",
			`{"properties":{"v":{"type":"string"}}}`,
			`{"properties":{"v":{"type":"string","const":"1.0"}}}`,
			"/properties/v: const added"},
		{"minimum raised",
			`{"properties":{"n":{"type":"integer","minimum":0}}}`,
			`{"properties":{"n":{"type":"integer","minimum":1}}}`,
			"/properties/n/minimum: raised from 0 to 1"},
		{"maximum lowered",
			`{"properties":{"n":{"type":"integer","maximum":100}}}`,
			`{"properties":{"n":{"type":"integer","maximum":50}}}`,
			"/properties/n/maximum: lowered from 100 to 50"},
		{"bound added",
			`{"properties":{"s":{"type":"string"}}}`,
			`{"properties":{"s":{"type":"string","maxLength":8}}}`,
			"/properties/s/maxLength: added"},
		{"pattern added",
			`{"properties":{"s":{"type":"string"}}}`,
			`{"properties":{"s":{"type":"string","pattern":"^[0-9]+$"}}}`,
			"/properties/s/pattern: added"},
		{"additionalProperties turned false",
			`{"type":"object","properties":{}}`,
			`{"type":"object","properties":{},"additionalProperties":false}`,
			"/additionalProperties: turned false"},
		{"nested items property removed",
			`{"properties":{"l":{"type":"array","items":{"properties":{"id":{"type":"integer"}}}}}}`,
			`{"properties":{"l":{"type":"array","items":{"properties":{}}}}}`,
			"/properties/l/items/properties/id: property removed"},
		{"definition removed",
			`{"$defs":{"cdr":{"type":"object"}}}`,
			`{"$defs":{}}`,
			"/$defs/cdr: definition removed"},
		{"reference changed",
			`{"properties":{"e":{"$ref":"#/$defs/a"}}}`,
			`{"properties":{"e":{"$ref":"#/$defs/b"}}}`,
			"/properties/e/$ref: changed"},
		{"schema turned false",
			`{"properties":{"x":true}}`,
			`{"properties":{"x":false}}`,
			"/properties/x: schema turned false"},
		{"unknown keyword added",
			`{"properties":{"x":{}}}`,
			`{"properties":{"x":{"oneOf":[{"type":"string"}]}}}`,
			"/properties/x/oneOf: added"},

		{"compatible: optional property added",
			`{"type":"object","required":["a"],"properties":{"a":{"type":"string"}}}`,
			`{"type":"object","required":["a"],"properties":{"a":{"type":"string"},"b":{"type":"integer"}}}`,
			""},
		{"compatible: enum widened, required shrunk, bounds loosened, docs changed",
			`{"required":["a","b"],"properties":{"a":{"enum":["x"]},"b":{"type":"integer","minimum":1,"maximum":3}}}`,
			`{"required":["a"],"description":"new","properties":{"a":{"enum":["x","y"],"description":"d"},"b":{"type":"integer","minimum":0,"maximum":4}}}`,
			""},
		{"compatible: additionalProperties opened",
			`{"properties":{},"additionalProperties":false}`,
			`{"properties":{}}`,
			""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := compatFindings(t, []byte(c.old), []byte(c.cur))
			if c.want == "" {
				if len(got) != 0 {
					t.Errorf("findings %q for a compatible change", got)
				}
				return
			}
			if !slices.ContainsFunc(got, func(f string) bool { return strings.Contains(f, c.want) }) {
				t.Errorf("findings %q, want one with %q", got, c.want)
			}
		})
	}
}

// TestCompatCheckerOnARealBreak breaks a real published schema the way a
// careless edit would (the CDR's disposition dropped, its id made a string)
// and expects the guard to name both.
func TestCompatCheckerOnARealBreak(t *testing.T) {
	old, ok := SchemaFile(TypeCDRCreated)
	if !ok {
		t.Fatal("no cdr.created schema")
	}
	var doc map[string]any
	if err := json.Unmarshal(old, &doc); err != nil {
		t.Fatal(err)
	}
	cdr := doc["$defs"].(map[string]any)["cdr"].(map[string]any)["properties"].(map[string]any)
	delete(cdr, "disposition")
	cdr["id"] = map[string]any{"type": "string"}
	cur, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	got := compatFindings(t, old, cur)
	for _, want := range []string{
		"/$defs/cdr/properties/disposition: property removed",
		"/$defs/cdr/properties/id: type changed from integer to string",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("findings %q lack %q", got, want)
		}
	}
}

// compatFindings lists what in cur breaks documents or consumers written
// against old. It is deliberately strict: a keyword it does not understand
// may not change at all.
func compatFindings(t *testing.T, old, cur []byte) []string {
	t.Helper()
	var o, c any
	if err := json.Unmarshal(old, &o); err != nil {
		t.Fatalf("published schema: %v", err)
	}
	if err := json.Unmarshal(cur, &c); err != nil {
		t.Fatalf("current schema: %v", err)
	}
	var out []string
	compat("", o, c, &out)
	return out
}

// annotations do not constrain documents: they may change freely.
var annotations = map[string]bool{
	"title": true, "description": true, "default": true, "examples": true,
	"$comment": true, "deprecated": true, "readOnly": true, "writeOnly": true,
}

var (
	lowerBounds = []string{"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"}
	upperBounds = []string{"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"}
)

// compat compares the schema old with cur at path (a JSON pointer into the
// schema), appending a finding for each incompatibility.
func compat(path string, old, cur any, out *[]string) {
	add := func(p, format string, args ...any) { *out = append(*out, p+": "+fmt.Sprintf(format, args...)) }

	// Boolean schemas: true accepts everything (as {} does), false nothing.
	if cur == false {
		if old != false {
			add(path, "schema turned false")
		}
		return
	}
	if old == false || cur == true {
		return
	}
	o, c := asSchema(old), asSchema(cur)

	handled := map[string]bool{}
	for _, k := range []string{"type", "properties", "required", "enum", "const", "additionalProperties", "items", "$defs", "pattern", "format"} {
		handled[k] = true
	}

	if ot, ok := o["type"]; ok {
		if ct, ok := c["type"]; !ok {
			add(path, "type removed (was %s)", typeString(ot))
		} else if !slices.Equal(typeSet(ot), typeSet(ct)) {
			add(path, "type changed from %s to %s", typeString(ot), typeString(ct))
		}
	} else if ct, ok := c["type"]; ok {
		add(path, "type added (%s)", typeString(ct))
	}

	op, _ := o["properties"].(map[string]any)
	cp, _ := c["properties"].(map[string]any)
	for _, name := range sortedKeys(op) {
		if cs, ok := cp[name]; !ok {
			add(path+"/properties/"+name, "property removed")
		} else {
			compat(path+"/properties/"+name, op[name], cs, out)
		}
	}

	oreq := stringSet(o["required"])
	for _, name := range stringSet(c["required"]) {
		if !slices.Contains(oreq, name) {
			add(path+"/required", "%s now required", name)
		}
	}

	if ce, ok := c["enum"].([]any); ok {
		if oe, ok := o["enum"].([]any); !ok {
			add(path, "enum added")
		} else {
			for _, v := range oe {
				if !slices.ContainsFunc(ce, func(x any) bool { return reflect.DeepEqual(x, v) }) {
					add(path+"/enum", "%s no longer allowed", jsonString(v))
				}
			}
		}
	}
	if cc, ok := c["const"]; ok {
		if oc, ok := o["const"]; !ok {
			add(path, "const added")
		} else if !reflect.DeepEqual(oc, cc) {
			add(path+"/const", "changed from %s to %s", jsonString(oc), jsonString(cc))
		}
	}

	for _, k := range lowerBounds {
		handled[k] = true
		cb, ok := c[k].(float64)
		if !ok {
			continue
		}
		if ob, ok := o[k].(float64); !ok {
			add(path+"/"+k, "added")
		} else if cb > ob {
			add(path+"/"+k, "raised from %v to %v", ob, cb)
		}
	}
	for _, k := range upperBounds {
		handled[k] = true
		cb, ok := c[k].(float64)
		if !ok {
			continue
		}
		if ob, ok := o[k].(float64); !ok {
			add(path+"/"+k, "added")
		} else if cb < ob {
			add(path+"/"+k, "lowered from %v to %v", ob, cb)
		}
	}
	for _, k := range []string{"pattern", "format"} {
		if cv, ok := c[k]; ok {
			if ov, ok := o[k]; !ok {
				add(path+"/"+k, "added")
			} else if ov != cv {
				add(path+"/"+k, "changed from %s to %s", jsonString(ov), jsonString(cv))
			}
		}
	}

	// Absent additionalProperties and items accept anything, as true does.
	for _, k := range []string{"additionalProperties", "items"} {
		ov, ok := o[k]
		if !ok {
			ov = true
		}
		cv, ok := c[k]
		if !ok {
			cv = true
		}
		if k == "additionalProperties" && cv == false && ov != false {
			add(path+"/"+k, "turned false")
			continue
		}
		compat(path+"/"+k, ov, cv, out)
	}

	od, _ := o["$defs"].(map[string]any)
	cd, _ := c["$defs"].(map[string]any)
	for _, name := range sortedKeys(od) {
		if cs, ok := cd[name]; !ok {
			add(path+"/$defs/"+name, "definition removed")
		} else {
			compat(path+"/$defs/"+name, od[name], cs, out)
		}
	}

	// Anything else ($ref, $id, combinators, conditionals, ...) must not
	// change: the checker cannot tell a loosening from a tightening there.
	keys := map[string]bool{}
	for k := range o {
		keys[k] = true
	}
	for k := range c {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		if handled[k] || annotations[k] {
			continue
		}
		ov, inOld := o[k]
		cv, inCur := c[k]
		switch {
		case !inOld:
			add(path+"/"+k, "added")
		case !inCur:
			add(path+"/"+k, "removed")
		case !reflect.DeepEqual(ov, cv):
			add(path+"/"+k, "changed from %s to %s", jsonString(ov), jsonString(cv))
		}
	}
}

// asSchema returns a schema object; true (or anything not an object) is {}.
func asSchema(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

func typeSet(v any) []string {
	s := stringSet(v)
	if str, ok := v.(string); ok {
		s = []string{str}
	}
	slices.Sort(s)
	return s
}

func typeString(v any) string { return strings.Join(typeSet(v), "|") }

func stringSet(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
