package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// ValidationError reports a document that does not satisfy the schema of its
// type. Problems has one entry per failing keyword.
type ValidationError struct {
	Type     string
	Problems []Problem
}

// Problem is one reason a document is invalid: where in the document
// (a JSON pointer, "" for the whole document) and what is wrong there.
type Problem struct {
	Location string
	Message  string
}

// Error lists every problem on one line.
func (e *ValidationError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "schema: invalid %s document", e.Type)
	for i, p := range e.Problems {
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString("; ")
		}
		loc := p.Location
		if loc == "" {
			loc = "/"
		}
		fmt.Fprintf(&sb, "at %s: %s", loc, p.Message)
	}
	return sb.String()
}

// eventURLPrefix names the compiled schemas that check an event as a whole:
// the envelope, the type and dataschema it must carry, and its data. They
// are built here, not published: the published files are the parts.
const eventURLPrefix = "urn:pbx-bridge:event:"

var compiled = sync.OnceValues(compile)

// compile compiles every schema once, with formats (date-time, uri) asserted.
func compile() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for typ := range kinds {
		b, ok := SchemaFile(typ)
		if !ok {
			return nil, fmt.Errorf("schema: no file %s for %s", fileName(typ), typ)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema: %s: %w", fileName(typ), err)
		}
		if id, _ := doc.(map[string]any)["$id"].(string); id != SchemaID(typ) {
			return nil, fmt.Errorf("schema: %s has $id %q, want %q", fileName(typ), id, SchemaID(typ))
		}
		if err := c.AddResource(SchemaID(typ), doc); err != nil {
			return nil, fmt.Errorf("schema: %s: %w", fileName(typ), err)
		}
		if kinds[typ] != kindEvent {
			continue
		}
		event := map[string]any{
			"$schema": "https://json-schema.org/draft/2020-12/schema",
			"$ref":    SchemaID(TypeEnvelope),
			"properties": map[string]any{
				"type":       map[string]any{"const": typ},
				"dataschema": map[string]any{"const": SchemaID(typ)},
				"data":       map[string]any{"$ref": SchemaID(typ)},
			},
		}
		if err := c.AddResource(eventURLPrefix+typ, event); err != nil {
			return nil, fmt.Errorf("schema: event %s: %w", typ, err)
		}
	}
	out := make(map[string]*jsonschema.Schema, len(kinds))
	for typ, k := range kinds {
		url := SchemaID(typ)
		if k == kindEvent {
			url = eventURLPrefix + typ
		}
		sch, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("schema: compile %s: %w", typ, err)
		}
		out[typ] = sch
	}
	return out, nil
}

// Validate checks doc against the schema of typ. For an event type doc is
// the whole event: the envelope, its type and dataschema, and its data are
// all checked. For a body type (and TypeEnvelope) doc is checked as it is.
// A document that breaks the schema gives a *ValidationError; an unknown type
// gives an error wrapping ErrUnknownType.
func Validate(typ string, doc []byte) error {
	schemas, err := compiled()
	if err != nil {
		return err
	}
	sch, ok := schemas[typ]
	if !ok {
		return unknownType(typ)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("schema: %s document is not JSON: %w", typ, err)
	}
	err = sch.Validate(v)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return &ValidationError{Type: typ, Problems: problems(ve)}
	}
	return err
}

// ValidateEvent checks an event as Validate does, taking the type from the
// event's own type attribute.
func ValidateEvent(raw []byte) error {
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("schema: event is not a JSON object: %w", err)
	}
	if head.Type == nil {
		return errors.New("schema: event has no type")
	}
	if !IsEventType(*head.Type) {
		if _, ok := kinds[*head.Type]; ok {
			return fmt.Errorf("schema: %q is not an event type", *head.Type)
		}
		return unknownType(*head.Type)
	}
	return Validate(*head.Type, raw)
}

var english = message.NewPrinter(language.English)

// problems flattens the validator's tree of errors into its leaves, the
// keywords that failed, in the validator's order.
func problems(ve *jsonschema.ValidationError) []Problem {
	var out []Problem
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, Problem{
				Location: pointer(e.InstanceLocation),
				Message:  e.ErrorKind.LocalizedString(english),
			})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}

func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return sb.String()
}
