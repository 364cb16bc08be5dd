// Package loose holds the JSON primitives both PBX clients read answers
// and frames with: whole numbers as the SDK's JavaScript compares them, the
// kind of a value for a log line, and a decoding that forgives a field of
// an unexpected type. It knows no endpoint and no answer type.
package loose
