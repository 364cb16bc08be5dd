package livecall

import (
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// Replay takes in a call event that a previous holder of the event stream
// published, typically after the state this tracker imported was saved
// (the saves trail the events): the extension's state in the call moves
// to the event's if the event is newer than what the tracker knows (a
// higher seq), and no event is made. A call the tracker does not know is
// tracked from the event's channel on. Call it for each such event, in
// stream order, before Reconcile: the events Reconcile then derives
// follow those already published, with the next seq, rather than numbering
// again from the saved state (an answered#2 published, and a held#2
// derived from the state before it). at is when the event was published.
// It reports whether the event moved the tracker.
func (t *Tracker) Replay(ev schema.CallEvent, at time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := parsePhase(ev.Event)
	if ev.Event == schema.CallResumed {
		p, ok = phaseAnswered, true
	}
	if !ok || p == phaseNone || ev.PBX != t.cfg.PBX || ev.CallID == "" || ev.ExtNum == "" || ev.Seq < 1 ||
		!fits(ev.CallID, ev.ExtNum, ev.ChannelID, ev.MemberStatus) {
		t.count(ReasonBadEvent)
		return false
	}
	if t.ended.has(ev.CallID) {
		return false
	}
	c := t.calls[ev.CallID]
	if c == nil {
		if p == phaseEnded {
			return false // nothing left to track of it
		}
		if len(t.calls) >= t.cfg.MaxCalls {
			t.count(ReasonCallsFull)
			return false
		}
		c = &call{id: ev.CallID, exts: map[string]*extCall{}, seen: at}
		t.calls[c.id] = c
	}
	es := c.exts[ev.ExtNum]
	if es == nil {
		es = &extCall{}
		c.exts[ev.ExtNum] = es
	}
	if ev.Seq <= es.seq {
		return false
	}
	es.phase, es.seq = p, ev.Seq
	if at.After(c.seen) {
		c.seen = at
	}
	t.replayChannel(c, ev, p)
	if p == phaseEnded && allEnded(c) {
		t.forget(c)
		t.ended.add(c.id, at)
	}
	return true
}

// replayChannel records the event's channel in c, in the event's phase.
func (t *Tracker) replayChannel(c *call, ev schema.CallEvent, p phase) {
	m := c.member(ev.ChannelID)
	if m == nil {
		cm := openapi.CallMember{Kind: openapi.MemberExtension, Number: ev.ExtNum, ChannelID: ev.ChannelID, Status: openapi.MemberStatus(ev.MemberStatus)}
		if !usable(cm) || len(c.members) >= MaxMembers || t.channels >= ChannelsPerCall*t.cfg.MaxCalls {
			return
		}
		m = &member{CallMember: cm}
		c.members = append(c.members, m)
		t.channels++
	}
	if m.Kind == openapi.MemberExtension && m.Number == ev.ExtNum {
		m.phase, m.Status = p, openapi.MemberStatus(ev.MemberStatus)
	}
}

// allEnded reports whether every extension of c has ended in it.
func allEnded(c *call) bool {
	for _, es := range c.exts {
		if es.phase != phaseEnded {
			return false
		}
	}
	return true
}
