// Package kvkey names the bridge's keys in JetStream KV buckets: a PBX's
// token, and any string escaped to the key alphabet.
package kvkey

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Ext names an extension of a PBX: the PBX (hashed, since a host:port is
// not a valid key) and the extension number, escaped.
func Ext(host, ext string) string { return Host(host) + "." + Token(ext) }

// Host is the key token of a PBX: a hash of its host.
func Host(host string) string {
	h := sha256.Sum256([]byte(host))
	return hex.EncodeToString(h[:8])
}

// Token escapes s to the KV key alphabet: letters, digits, - and _ stay,
// every other byte becomes =XX.
func Token(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}
