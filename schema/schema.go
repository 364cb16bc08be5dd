// Package schema is the event contract of pbx-bridge: the Go types of every
// event and request/reply body, the versioned JSON Schema files that describe
// them (embedded, draft 2020-12), and validation against those files.
//
// Each schema is named by its type: the CloudEvents type for events (e.g.
// com.yeastar.pbx.cdr.changed.v1) and a type of the same form for the
// request/reply bodies. The major version is the last element of the name and
// the directory of the file (v1/cdr.changed.json); the schema's $id is
// urn:pbx-bridge:schema:<type>. README.md in this directory has the rule for
// changing a schema.
//
// The package imports nothing else of pbx-bridge: the contract does not move
// when the PBX's wire format does.
package schema

import (
	"embed"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The CloudEvents types of the events pbx-bridge publishes.
const (
	TypeCDRChanged   = "com.yeastar.pbx.cdr.changed.v1"
	TypeCDRCreated   = "com.yeastar.pbx.cdr.created.v1"
	TypeCallMissed   = "com.yeastar.pbx.call.missed.v1"
	TypeSessionState = "com.yeastar.pbx.session.state.v1"
	TypeRuntimeError = "com.yeastar.pbx.runtime.error.v1"
	TypeNotify       = "com.yeastar.pbx.notify.v1"
)

// The types of the request/reply bodies. They are not CloudEvents: a body is
// sent and validated as it is, without an envelope.
const (
	TypeCDRQueryRequest = "com.yeastar.pbx.cdr.query.request.v1"
	TypeCDRQueryResult  = "com.yeastar.pbx.cdr.query.result.v1"
	TypeInfo            = "com.yeastar.pbx.info.v1"
	TypeError           = "com.yeastar.pbx.error.v1"
	TypeFleetStatus     = "com.yeastar.pbx.fleet.status.v1"
)

// TypeEnvelope names the schema of the CloudEvents envelope shared by every
// event. It is a schema name, never the type of an event.
const TypeEnvelope = "com.yeastar.pbx.envelope.v1"

// SchemaIDPrefix starts the $id of every schema (and the dataschema of every
// event): the $id is SchemaIDPrefix followed by the type.
const SchemaIDPrefix = "urn:pbx-bridge:schema:"

// ErrUnknownType is returned (wrapped) for a type this package has no schema for.
var ErrUnknownType = errors.New("schema: unknown type")

type kind int

const (
	kindEvent kind = iota
	kindBody
	kindEnvelope
)

// kinds lists every schema; a test checks it against the embedded files.
var kinds = map[string]kind{
	TypeCDRChanged:      kindEvent,
	TypeCDRCreated:      kindEvent,
	TypeCallMissed:      kindEvent,
	TypeSessionState:    kindEvent,
	TypeRuntimeError:    kindEvent,
	TypeNotify:          kindEvent,
	TypeCDRQueryRequest: kindBody,
	TypeCDRQueryResult:  kindBody,
	TypeInfo:            kindBody,
	TypeError:           kindBody,
	TypeFleetStatus:     kindBody,
	TypeEnvelope:        kindEnvelope,

	// live.go and callctl.go
	TypeCallRinging:         kindEvent,
	TypeCallAnswered:        kindEvent,
	TypeCallHeld:            kindEvent,
	TypeCallResumed:         kindEvent,
	TypeCallEnded:           kindEvent,
	TypePresenceChanged:     kindEvent,
	TypeRegistrationChanged: kindEvent,
	TypeCallStatusChanged:   kindEvent,
	TypeCDREnded:            kindEvent,
	TypeSystemInfo:          kindEvent,
	TypeSystemWarning:       kindEvent,
	TypeSystemAlert:         kindEvent,
	TypeCallDialRequest:     kindBody,
	TypeCallDialResult:      kindBody,
	TypeCallActionRequest:   kindBody,
	TypeCallTransferRequest: kindBody,
	TypeCallActionResult:    kindBody,
	TypeCallListResult:      kindBody,
}

//go:embed v1/*.json
var files embed.FS

const typePrefix = "com.yeastar.pbx."

// Types returns the name of every schema this package has, sorted: the
// CloudEvents types, the request/reply body types and TypeEnvelope. It is the
// list to publish with SchemaFile.
func Types() []string {
	out := make([]string, 0, len(kinds))
	for t := range kinds {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// IsEventType reports whether typ is the CloudEvents type of an event this
// package has a schema for.
func IsEventType(typ string) bool {
	k, ok := kinds[typ]
	return ok && k == kindEvent
}

// SchemaID returns the $id of the schema of typ, which is also the dataschema
// attribute of an event of that type.
func SchemaID(typ string) string { return SchemaIDPrefix + typ }

// SchemaFile returns the JSON Schema file of typ, as embedded, and whether
// there is one. The caller owns the returned bytes.
func SchemaFile(typ string) ([]byte, bool) {
	if _, ok := kinds[typ]; !ok {
		return nil, false
	}
	b, err := files.ReadFile(fileName(typ))
	if err != nil {
		return nil, false
	}
	return b, true
}

// fileName maps com.yeastar.pbx.cdr.changed.v1 to v1/cdr.changed.json.
func fileName(typ string) string {
	name := strings.TrimPrefix(typ, typePrefix)
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return name + ".json"
	}
	return name[i+1:] + "/" + name[:i] + ".json"
}

func unknownType(typ string) error {
	return fmt.Errorf("%w %q", ErrUnknownType, typ)
}
