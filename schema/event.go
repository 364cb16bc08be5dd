package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SpecVersion is the CloudEvents version of Event.
const SpecVersion = "1.0"

// ContentType is the datacontenttype of every event.
const ContentType = "application/json"

// Event is the CloudEvents 1.0 envelope, in the JSON format, of every event
// pbx-bridge publishes. Data holds the JSON of one of the data types of this
// package (CDRChanged, CDRCreated, ...), as named by Type and DataSchema.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            time.Time       `json:"time"`
	Subject         string          `json:"subject"`
	DataContentType string          `json:"datacontenttype"`
	DataSchema      string          `json:"dataschema"`
	Data            json.RawMessage `json:"data"`
}

// typed is implemented by the data types of this package, so that New can
// refuse data of one type under the name of another.
type typed interface{ schemaType() string }

// New returns the event of type typ carrying data, which is marshalled to
// JSON and must be a JSON object. Source names the PBX, subject the extension
// number, and id should come from EventID so that the same fact always gets
// the same id. t is stored in UTC.
//
// New checks the envelope, not the data against its schema: that costs a
// validation per event, which Validate and ValidateEvent do on demand.
func New(typ, source, subject, id string, t time.Time, data any) (Event, error) {
	if !IsEventType(typ) {
		if _, ok := kinds[typ]; ok {
			return Event{}, fmt.Errorf("schema: %q is not an event type", typ)
		}
		return Event{}, unknownType(typ)
	}
	if d, ok := data.(typed); ok && d.schemaType() != typ {
		return Event{}, fmt.Errorf("schema: data of type %s given for an event of type %s", d.schemaType(), typ)
	}
	switch {
	case source == "":
		return Event{}, errors.New("schema: event source is empty")
	case subject == "":
		return Event{}, errors.New("schema: event subject is empty")
	case id == "":
		return Event{}, errors.New("schema: event id is empty")
	case t.IsZero():
		return Event{}, errors.New("schema: event time is zero")
	}
	raw, err := Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("schema: marshal %s data: %w", typ, err)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return Event{}, fmt.Errorf("schema: %s data is not a JSON object", typ)
	}
	return Event{
		SpecVersion:     SpecVersion,
		ID:              id,
		Source:          source,
		Type:            typ,
		Time:            t.UTC(),
		Subject:         subject,
		DataContentType: ContentType,
		DataSchema:      SchemaID(typ),
		Data:            raw,
	}, nil
}

// Marshal encodes v as JSON like json.Marshal, but without escaping <, >
// and & for HTML: an event is no web page, and the escape makes each of
// those bytes six, so that a notification full of them would outgrow the
// NATS server's max_payload.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// eventIDDomain keeps these ids apart from any other SHA-256 over the same parts.
const eventIDDomain = "pbx-bridge/event-id/v1"

// EventID returns a deterministic event id for the fact named by parts (for
// example the type, the PBX, the extension and the CDR's id): the same parts
// always give the same id, so JetStream de-duplicates a fact published twice.
// Each part is length-prefixed before hashing, so ("ab", "c") and ("a", "bc")
// differ. The id is SHA-256 shaped as a UUID version 8 (RFC 9562), 36
// characters.
func EventID(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(eventIDDomain)
	for _, p := range parts {
		write(p)
	}
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
