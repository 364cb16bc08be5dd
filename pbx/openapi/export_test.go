package openapi

import "encoding/json"

// DecodeExtension exposes the loose decoding of one extension/list item
// to the external tests.
func DecodeExtension(raw string) (Extension, bool) {
	return decodeExtension(json.RawMessage(raw))
}
