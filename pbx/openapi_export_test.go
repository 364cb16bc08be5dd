package pbx

import "encoding/json"

// DecodeExtensionInfo exposes the loose decoding of one extension/list item
// to the external tests.
func DecodeExtensionInfo(raw string) (ExtensionInfo, bool) {
	return decodeExtensionInfo(json.RawMessage(raw))
}
