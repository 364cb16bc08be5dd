package livecall

import (
	"context"
	"strconv"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
)

// ownLeg finds the extension's live channel that the request names: its
// channel in the call of call_id, or the channel of channel_id, which must
// be one of its own. The tracker answers first; when it does not know (it
// may lag, or run on another replica), call/query does.
func (r *Request) ownLeg(ctx context.Context) (openapi.CallState, openapi.CallMember, *Error) {
	callID, channel := r.action.CallID, r.action.ChannelID
	if tr := r.c.cfg.Tracker; tr != nil {
		var cs openapi.CallState
		var ok bool
		if callID != "" {
			cs, ok = tr.Call(callID)
		} else {
			cs, ok = tr.CallOfChannel(channel)
		}
		if ok {
			if own, ok := r.pick(cs); ok {
				return cs, own, nil
			}
		}
	}
	q := openapi.CallQuery{CallID: callID}
	if callID == "" {
		q = openapi.CallQuery{Extension: r.ext}
	}
	calls, err := r.c.cfg.API.QueryCalls(ctx, q)
	if err != nil {
		return openapi.CallState{}, openapi.CallMember{}, pbxError(err)
	}
	for _, cs := range calls {
		if callID != "" && cs.CallID != callID {
			continue
		}
		if own, ok := r.pick(cs); ok {
			return cs, own, nil
		}
	}
	msg := "extension " + strconv.Quote(r.ext) + " has no live channel in call " + strconv.Quote(callID)
	if callID == "" {
		msg = "channel " + strconv.Quote(channel) + " is no live channel of extension " + strconv.Quote(r.ext)
	}
	return openapi.CallState{}, openapi.CallMember{}, &Error{Code: codeNotFound, Message: msg}
}

// pick returns the request's leg in cs: the channel named, if it is one of
// the extension's and has not hung up; else the extension's most engaged
// channel that has not (talking or held, then ringing, then any other).
func (r *Request) pick(cs openapi.CallState) (openapi.CallMember, bool) {
	mine := func(m openapi.CallMember) bool {
		return m.Kind == openapi.MemberExtension && m.Number == r.ext && m.Status != openapi.StatusBye && m.ChannelID != ""
	}
	if ch := r.action.ChannelID; ch != "" {
		m, ok := cs.Member(ch)
		return m, ok && mine(m)
	}
	var best openapi.CallMember
	found := false
	for _, m := range cs.Members {
		if mine(m) && (!found || engagement(m.Status) > engagement(best.Status)) {
			best, found = m, true
		}
	}
	return best, found
}

// engagement orders the statuses of a live channel for pick.
func engagement(s openapi.MemberStatus) int {
	switch p, _ := statusPhase(s); p {
	case phaseAnswered, phaseHeld:
		return 3
	case phaseRinging:
		return 2
	}
	return 1
}

// counterpart returns the party the extension talks to in a two-party
// call: the one member that is not the extension and has not hung up.
func counterpart(cs openapi.CallState, own openapi.CallMember, ext string) (openapi.CallMember, error) {
	var others []openapi.CallMember
	for _, m := range cs.Members {
		if m.ChannelID == own.ChannelID || m.Kind == openapi.MemberExtension && m.Number == ext || m.Status == openapi.StatusBye {
			continue
		}
		others = append(others, m)
	}
	if len(others) != 1 {
		return openapi.CallMember{}, badRequest("a blind transfer moves the one party the extension talks to: call %s has %d other parties",
			strconv.Quote(cs.CallID), len(others))
	}
	return others[0], nil
}
