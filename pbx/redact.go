package pbx

import (
	"encoding/json"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/redact"
)

// Redacted replaces a credential in text.
const Redacted = redact.Redacted

// RemovedCredential replaces the value of a credential field in a
// notification's msg (see RedactCredentialFields).
const RemovedCredential = redact.RemovedCredential

// Redact returns s with the credentials it may carry replaced by REDACTED:
// the value of every field whose name contains password, passwd, pwd,
// secret, token, key, sign, auth or ha1 (in any case; access_token,
// signature and reg_password among them), in query strings, key=value text
// and JSON ("name":"value" and "name":number), and passwords in URLs' user
// info. Use it on any URL or error text before logging it; the socket URL
// carries the access token.
func Redact(s string) string { return redact.Text(s) }

// RedactCredentialFields replaces the value of every object field, at any
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
// clean. DecodeFrame applies it to every notification's msg.
func RedactCredentialFields(doc json.RawMessage) (json.RawMessage, int) {
	return redact.Fields(doc)
}

// MinSignatureLen is the length below which a configured secret cannot be
// a real signature (the PBX's OpenAPI mints far longer ones). The package
// still redacts a shorter secret wherever it appears, however much ordinary
// text that hides; the bridge warns at start about such a secret.
const MinSignatureLen = 8
