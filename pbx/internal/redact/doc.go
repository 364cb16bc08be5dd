// Package redact keeps credentials out of what the PBX clients log, return
// as errors or deliver: the values of fields named like a credential (in
// key=value text, JSON, URLs' user info), and the values a client knows to
// be its own secrets and tokens, whatever their length.
package redact
