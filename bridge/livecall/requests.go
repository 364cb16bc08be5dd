package livecall

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// The rules of a valid call control request live here, and only here:
// the JSON Schemas (call.dial.request, call.action.request,
// call.transfer.request) document the same, and a test holds the two
// together. What breaks one is a 400 before anything reaches the PBX.

// maxRequestBytes bounds a request body: every valid one is far smaller.
const maxRequestBytes = 64 << 10

// members reads body as one JSON object whose member names are all among
// allowed (exactly: encoding/json would take "CALLEE" for "callee"), every
// value a string but those named in booleans, which are booleans. An empty
// body is an empty object.
func members(body []byte, allowed, booleans []string) (map[string]string, map[string]bool, error) {
	strs, bools := map[string]string{}, map[string]bool{}
	if len(body) > maxRequestBytes {
		return nil, nil, badRequest("request of %d bytes, more than %d", len(body), maxRequestBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return strs, bools, nil
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, nil, badRequest("malformed request: not a JSON object")
	}
	if dec.More() {
		return nil, nil, badRequest("malformed request: trailing data after the JSON object")
	}
	for _, name := range sortedKeys(raw) {
		v := raw[name]
		// encoding/json reads null into a string or a bool as nothing;
		// the schemas allow no null.
		null := string(bytes.TrimSpace(v)) == "null"
		switch {
		case slices.Contains(booleans, name):
			var b bool
			if null || json.Unmarshal(v, &b) != nil {
				return nil, nil, badRequest("%s must be true or false", name)
			}
			bools[name] = b
		case slices.Contains(allowed, name):
			var s string
			if null || json.Unmarshal(v, &s) != nil {
				return nil, nil, badRequest("%s must be a string", name)
			}
			strs[name] = s
		default:
			return nil, nil, badRequest("malformed request: unknown member %q", name)
		}
	}
	return strs, bools, nil
}

// ParseDial reads and validates a call.dial request body.
func ParseDial(body []byte) (schema.CallDialRequest, error) {
	strs, bools, err := members(body, []string{"callee"}, []string{"auto_answer"})
	if err != nil {
		return schema.CallDialRequest{}, err
	}
	req := schema.CallDialRequest{Callee: strs["callee"], AutoAnswer: bools["auto_answer"]}
	if !openapi.ValidNumber(req.Callee) {
		return req, badRequest("callee %q is not a number to dial (1 to 32 of 0-9 * # +)", req.Callee)
	}
	return req, nil
}

// ParseAction reads and validates a call.hangup, call.hold or call.unhold
// request body.
func ParseAction(body []byte) (schema.CallActionRequest, error) {
	strs, _, err := members(body, []string{"call_id", "channel_id"}, nil)
	if err != nil {
		return schema.CallActionRequest{}, err
	}
	req := schema.CallActionRequest{CallID: strs["call_id"], ChannelID: strs["channel_id"]}
	return req, checkLeg(strs)
}

// checkLeg checks the exactly one of call_id and channel_id that names
// the extension's leg.
func checkLeg(strs map[string]string) error {
	callID, hasCall := strs["call_id"]
	channel, hasChannel := strs["channel_id"]
	switch {
	case hasCall == hasChannel:
		return badRequest("give exactly one of call_id and channel_id")
	case hasCall && !openapi.ValidCallID(callID):
		return badRequest("call_id %q is not a call id (1 to 64 of A-Z a-z 0-9 . _ -)", callID)
	case hasChannel && !openapi.ValidChannelID(channel):
		return badRequest("channel_id %q is not a channel id (1 to 128 of A-Z a-z 0-9 / _ . @ : ; -)", channel)
	}
	return nil
}

// ParseTransfer reads and validates a call.transfer request body.
func ParseTransfer(body []byte) (schema.CallTransferRequest, error) {
	strs, _, err := members(body, []string{"call_id", "channel_id", "type", "number", "attended_operate"}, nil)
	if err != nil {
		return schema.CallTransferRequest{}, err
	}
	req := schema.CallTransferRequest{CallID: strs["call_id"], ChannelID: strs["channel_id"], Type: strs["type"],
		Number: strs["number"], AttendedOperate: strs["attended_operate"]}
	if err := checkLeg(strs); err != nil {
		return req, err
	}
	_, hasNumber := strs["number"]
	op, hasOp := strs["attended_operate"]
	switch {
	case req.Type != schema.TransferBlind && req.Type != schema.TransferAttended:
		return req, badRequest("type %q is neither blind nor attended", req.Type)
	case hasOp && req.Type != schema.TransferAttended:
		return req, badRequest("attended_operate is for an attended transfer")
	case hasOp && hasNumber:
		return req, badRequest("attended_operate acts on the transfer under way: it takes no number")
	case hasOp && !slices.Contains([]string{schema.AttendedComplete, schema.AttendedAbort, schema.AttendedThreeway, schema.AttendedSwap}, op):
		return req, badRequest("attended_operate %q is none of complete, abort, threeway, swap", op)
	case !hasOp && !openapi.ValidNumber(req.Number):
		return req, badRequest("number %q is not a number to dial (1 to 32 of 0-9 * # +)", req.Number)
	}
	return req, nil
}

// ParseList checks a call.list request body: empty, or an empty object.
func ParseList(body []byte) error {
	_, _, err := members(body, nil, nil)
	return err
}

func badRequest(format string, a ...any) *Error {
	return &Error{Code: codeBadRequest, Message: fmt.Sprintf(format, a...)}
}
