package openapi

import (
	"encoding/json"
	"fmt"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/loose"
)

// decodeCallInfo reads a Call_Info: call_id and members are required; a
// member that cannot be read becomes a MemberError.
func decodeCallInfo(m map[string]json.RawMessage) (*CallState, error) {
	r := fieldReader{m: m}
	cs := &CallState{CallID: r.required("call_id")}
	if r.err != nil {
		return nil, r.err
	}
	raw, ok := m["members"]
	if !ok || isNull(raw) {
		return nil, fmt.Errorf("%w: members: missing", ErrBadEventField)
	}
	var members []json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, fmt.Errorf("%w: members: a %s, not an array", ErrBadEventField, loose.Kind(raw))
	}
	for i, raw := range members {
		mem, err := decodeMember(raw)
		if err != nil {
			cs.MemberErrors = append(cs.MemberErrors, &MemberError{Index: i, Err: err})
			continue
		}
		cs.Members = append(cs.Members, mem)
	}
	return cs, nil
}

// memberKinds are the keys of a member, in the reference's order.
var memberKinds = [...]MemberKind{MemberExtension, MemberInbound, MemberOutbound}

// decodeMember reads one element of members: an object holding exactly one
// of extension, inbound and outbound. channel_id and member_status are
// required (a member without them can be neither shown nor acted on), and
// an extension's number too.
func decodeMember(raw json.RawMessage) (CallMember, error) {
	obj, err := readObject(raw)
	if err != nil {
		return CallMember{}, err
	}
	var (
		kind  MemberKind
		inner json.RawMessage
		n     int
	)
	for _, k := range memberKinds {
		if v, ok := obj[string(k)]; ok && !isNull(v) {
			kind, inner = k, v
			n++
		}
	}
	switch n {
	case 0:
		return CallMember{}, fmt.Errorf("%w: none of extension, inbound, outbound", ErrBadEventField)
	case 1:
	default:
		return CallMember{}, fmt.Errorf("%w: more than one of extension, inbound, outbound", ErrBadEventField)
	}
	f, err := readObject(inner)
	if err != nil {
		return CallMember{}, fmt.Errorf("%w: %s: %v", ErrBadEventField, kind, err)
	}
	r := fieldReader{m: f}
	m := CallMember{Kind: kind, ChannelID: r.required("channel_id"), Status: MemberStatus(r.required("member_status")), CallPath: r.str("call_path")}
	if kind == MemberExtension {
		m.Number = r.required("number")
	} else {
		m.From, m.To, m.TrunkName = r.str("from"), r.str("to"), r.str("trunk_name")
	}
	if r.err != nil {
		return CallMember{}, fmt.Errorf("%s: %w", kind, r.err)
	}
	return m, nil
}
