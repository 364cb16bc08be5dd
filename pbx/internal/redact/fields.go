package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// RemovedCredential replaces the value of a credential field in a
// document (see Fields).
const RemovedCredential = "[removed: credential]"

// credentialWords are the parts of a field name that make it a credential,
// in lower case: notification 20066 carries SIP registration data
// (reg_password, ...), and other firmware may send more.
var credentialWords = []string{"password", "passwd", "pwd", "secret", "token", "key", "sign", "auth", "ha1"}

// isCredentialName reports whether a field name says it is a credential.
// It errs on the side of removal ("monkey" and "assign" match too): a field
// lost costs little, a credential on NATS a lot.
func isCredentialName(name string) bool {
	name = strings.ToLower(name)
	for _, w := range credentialWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// mayHoldCredential is a cheap first look: a document none of whose bytes
// could spell a credential name, even escaped, needs no walk.
func mayHoldCredential(doc []byte) bool {
	lower := bytes.ToLower(doc)
	if bytes.Contains(lower, []byte(`\u`)) {
		return true
	}
	for _, w := range credentialWords {
		if bytes.Contains(lower, []byte(w)) {
			return true
		}
	}
	return false
}

// Fields replaces the value of every object field, at any
// depth (objects inside arrays too), whose name contains (in any case)
// password, passwd, pwd, secret, token, key, sign, auth or ha1 with the
// string RemovedCredential, and returns the document and how many values it
// replaced. Whatever the value was (a string, a number, an object), the
// field stays, so a reader sees that something was removed. A document with
// nothing to remove is returned as is; otherwise it comes back compact,
// with the other fields in their order and numbers as written.
//
// doc must be valid JSON; anything else comes back as nil (JSON null) with
// a count of 0, since a document that does not parse cannot be shown to be
// clean.
func Fields(doc json.RawMessage) (json.RawMessage, int) {
	if !json.Valid(doc) {
		return nil, 0
	}
	return ValidFields(doc)
}

// ValidFields is Fields of a document known to be valid JSON (a decoder
// has just checked it), without checking it again.
func ValidFields(doc json.RawMessage) (json.RawMessage, int) {
	if !mayHoldCredential(doc) {
		return doc, 0
	}
	out, n, err := redactFields(doc)
	if err != nil {
		return nil, 0
	}
	if n == 0 {
		return doc, 0
	}
	return out, n
}

// redactFields walks a valid document token by token, once, copying it
// compact and replacing credential values. (Recursing per value would scan
// a deeply nested document once per level.) One token loop with its
// state, longer than a function should be: split, the state would travel
// between the parts.
func redactFields(doc []byte) (json.RawMessage, int, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var out bytes.Buffer
	out.Grow(len(doc))
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	writeString := func(s string) error {
		if err := enc.Encode(s); err != nil {
			return err
		}
		out.Truncate(out.Len() - 1) // Encode's newline
		return nil
	}
	type level struct {
		object   bool
		n        int  // members or elements written
		afterKey bool // in an object, the key was written, its value is next
	}
	var stack []*level
	removed := 0
	// valueDone counts a complete value in its container.
	valueDone := func() {
		if len(stack) > 0 {
			top := stack[len(stack)-1]
			top.n++
			top.afterKey = false
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out.Bytes(), removed, nil
		}
		if err != nil {
			return nil, 0, err
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && !top.afterKey {
			// A key, or the end of the object.
			if tok == json.Delim('}') {
				out.WriteByte('}')
				stack = stack[:len(stack)-1]
				valueDone()
				continue
			}
			key, _ := tok.(string)
			if top.n > 0 {
				out.WriteByte(',')
			}
			if err := writeString(key); err != nil {
				return nil, 0, err
			}
			out.WriteByte(':')
			if isCredentialName(key) {
				var skipped json.RawMessage
				if err := dec.Decode(&skipped); err != nil {
					return nil, 0, err
				}
				if err := writeString(RemovedCredential); err != nil {
					return nil, 0, err
				}
				removed++
				valueDone()
				continue
			}
			top.afterKey = true
			continue
		}
		if tok == json.Delim(']') {
			out.WriteByte(']')
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		if top != nil && !top.object && top.n > 0 {
			out.WriteByte(',')
		}
		switch v := tok.(type) {
		case json.Delim: // '{' or '['
			out.WriteByte(byte(v))
			stack = append(stack, &level{object: v == '{'})
			continue
		case string:
			if err := writeString(v); err != nil {
				return nil, 0, err
			}
		case json.Number:
			out.WriteString(v.String())
		case bool:
			if v {
				out.WriteString("true")
			} else {
				out.WriteString("false")
			}
		case nil:
			out.WriteString("null")
		}
		valueDone()
	}
}
