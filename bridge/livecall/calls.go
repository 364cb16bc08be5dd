package livecall

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// phase is a channel's (and an extension's) state in a call.
type phase uint8

const (
	phaseNone phase = iota // nothing known (or only statuses the reference does not list)
	phaseRinging
	phaseAnswered
	phaseHeld
	phaseEnded
)

var phaseNames = [...]string{"", schema.CallRinging, schema.CallAnswered, schema.CallHeld, schema.CallEnded}

func (p phase) String() string { return phaseNames[p] }

func parsePhase(s string) (phase, bool) {
	i := slices.Index(phaseNames[:], s)
	return phase(max(i, 0)), i >= 0
}

// statusPhase maps a member_status of the reference to its phase; false
// for a status it does not list, which changes no phase.
func statusPhase(s openapi.MemberStatus) (phase, bool) {
	switch s {
	case openapi.StatusRing, openapi.StatusAlert, openapi.StatusEarlyMedia:
		return phaseRinging, true
	case openapi.StatusAnswer, openapi.StatusAnswered:
		return phaseAnswered, true
	case openapi.StatusHold:
		return phaseHeld, true
	case openapi.StatusBye:
		return phaseEnded, true
	}
	return phaseNone, false
}

// rank orders an extension's channels' phases: its state in the call is
// that of its most engaged channel (one of several phones ringing answers,
// the others stop), ended only once every one has.
var rank = [...]int{phaseNone: 0, phaseEnded: 1, phaseRinging: 2, phaseHeld: 3, phaseAnswered: 4}

// member is one channel of a call as last seen.
type member struct {
	openapi.CallMember
	phase phase
}

// extCall is an extension's state in one call.
type extCall struct {
	phase phase
	seq   int
}

// call is a live call: its channels in the PBX's latest order (the rest
// after), and its extensions' states.
type call struct {
	id      string
	seen    time.Time
	members []*member
	exts    map[string]*extCall
}

func (c *call) member(channel string) *member {
	for _, m := range c.members {
		if m.ChannelID == channel {
			return m
		}
	}
	return nil
}

// usable reports whether a member can be tracked: a channel, a status,
// an extension's number, and no field beyond its bound.
func usable(m openapi.CallMember) bool {
	return m.ChannelID != "" && m.Status != "" && (m.Kind != openapi.MemberExtension || m.Number != "") &&
		(m.Kind == openapi.MemberExtension || m.Kind == openapi.MemberInbound || m.Kind == openapi.MemberOutbound) &&
		fits(m.ChannelID, string(m.Status), m.Number, m.From, m.To, m.TrunkName) && len(m.CallPath) <= MaxCallPathBytes
}

// applyCall applies one Call_Info (a 30011, a 30015, an item of
// call/query) and returns the events of the extensions whose state
// changed.
func (t *Tracker) applyCall(cs *openapi.CallState, now time.Time) []Event {
	t.countN(ReasonBadMember, len(cs.MemberErrors))
	if cs.CallID == "" || !fits(cs.CallID) {
		t.count(ReasonBadEvent)
		return nil
	}
	if t.ended.has(cs.CallID) {
		t.count(ReasonLateFrame)
		return nil
	}
	c := t.calls[cs.CallID]
	valid := t.usableMembers(cs.Members, c)
	if len(valid) == 0 {
		if len(cs.Members) == 0 && len(cs.MemberErrors) == 0 {
			t.count(ReasonBadEvent)
		}
		return nil
	}
	isNew := c == nil
	if isNew {
		// Full: a sweep may make room, but at most one a second, or a
		// flood of new calls would sweep on every frame.
		if len(t.calls) >= t.cfg.MaxCalls && now.Sub(t.lastSweep) >= time.Second {
			t.sweep(now)
		}
		if len(t.calls) >= t.cfg.MaxCalls {
			t.count(ReasonCallsFull)
			return nil
		}
		c = &call{id: cs.CallID, exts: map[string]*extCall{}}
		t.calls[c.id] = c
	} else if stale(c, valid) {
		t.count(ReasonStaleFrame)
		return nil
	}
	c.seen = now
	exts := t.update(c, valid)
	if isNew && len(c.members) == 0 { // none fitted (ReasonMembersFull)
		t.forget(c)
		return nil
	}
	var out []Event
	for _, ext := range exts {
		if ev, ok := t.transition(c, ext, now); ok {
			out = append(out, ev)
		}
	}
	if !slices.ContainsFunc(valid, func(m openapi.CallMember) bool { return m.Status != openapi.StatusBye }) {
		out = append(out, t.endCall(c, now, schema.CauseCallEnded)...)
	}
	return out
}

// usableMembers returns the members that can be tracked, counting the
// others: incomplete ones, and channels that changed hands (another kind or
// number than c knows for them).
func (t *Tracker) usableMembers(ms []openapi.CallMember, c *call) []openapi.CallMember {
	out := make([]openapi.CallMember, 0, len(ms))
	for _, m := range ms {
		if !usable(m) || slices.ContainsFunc(out, func(o openapi.CallMember) bool { return o.ChannelID == m.ChannelID }) {
			t.count(ReasonBadMember)
			continue
		}
		if c != nil {
			if old := c.member(m.ChannelID); old != nil && (old.Kind != m.Kind || old.Number != m.Number) {
				t.count(ReasonBadMember)
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

// stale reports whether the frame contradicts c: a channel that hung up
// is back, or one that talked or was held rings (RING) again. The PBX
// numbers no frame, so an older frame that does not contradict the state
// cannot be told from a newer one.
func stale(c *call, ms []openapi.CallMember) bool {
	for _, m := range ms {
		old := c.member(m.ChannelID)
		switch {
		case old == nil:
		case old.phase == phaseEnded && m.Status != openapi.StatusBye:
			return true
		case (old.phase == phaseAnswered || old.phase == phaseHeld) && m.Status == openapi.StatusRing:
			return true
		}
	}
	return false
}

// update records the frame's members in c, in the frame's order ahead of
// the channels it did not list, and returns the extensions it lists, in
// order.
func (t *Tracker) update(c *call, ms []openapi.CallMember) []string {
	listed := make([]*member, 0, len(c.members)+len(ms))
	var exts []string
	added := 0
	for _, m := range ms {
		cur := c.member(m.ChannelID)
		if cur == nil {
			if len(c.members)+added >= MaxMembers || t.channels+added >= ChannelsPerCall*t.cfg.MaxCalls {
				t.count(ReasonMembersFull)
				continue
			}
			cur = &member{}
			added++
		}
		p, known := statusPhase(m.Status)
		switch {
		case known:
			cur.phase = p
		case m.Status != cur.Status:
			t.count(ReasonUnknownStatus)
		}
		cur.CallMember = m
		listed = append(listed, cur)
		if m.Kind == openapi.MemberExtension && !slices.Contains(exts, m.Number) {
			exts = append(exts, m.Number)
		}
	}
	for _, m := range c.members {
		if !slices.Contains(listed, m) {
			listed = append(listed, m)
		}
	}
	c.members = listed
	t.channels += added
	return exts
}

// extPhase returns ext's state in c: its most engaged channel's, and that
// channel.
func extPhase(c *call, ext string) (phase, *member) {
	var best *member
	for _, m := range c.members {
		if m.Kind != openapi.MemberExtension || m.Number != ext {
			continue
		}
		if best == nil || rank[m.phase] > rank[best.phase] {
			best = m
		}
	}
	if best == nil {
		return phaseNone, nil
	}
	return best.phase, best
}

// transition moves ext to its state in c, and returns the event of the
// move, if it moved and is published.
func (t *Tracker) transition(c *call, ext string, now time.Time) (Event, bool) {
	p, lead := extPhase(c, ext)
	es := c.exts[ext]
	if es == nil {
		es = &extCall{}
		c.exts[ext] = es
	}
	if p == phaseNone || p == es.phase {
		return Event{}, false
	}
	return t.move(c, ext, es, p, lead, now, "")
}

// move records ext's new phase and builds its event.
func (t *Tracker) move(c *call, ext string, es *extCall, p phase, lead *member, now time.Time, cause string) (Event, bool) {
	prev := es.phase
	es.phase = p
	es.seq++
	name := p.String()
	if p == phaseAnswered && prev == phaseHeld {
		name = schema.CallResumed
	}
	if !t.served(ext) {
		return Event{}, false
	}
	typ, _ := schema.CallEventType(name)
	data := schema.CallEvent{
		Event: name, PBX: t.cfg.PBX, ExtNum: ext, CallID: c.id,
		ChannelID: lead.ChannelID, MemberStatus: string(lead.Status), Previous: prev.String(),
		Direction: direction(c.callMembers()), Other: other(c.members, ext), Trunk: trunk(c.callMembers()),
		CallPath: lead.CallPath, Seq: es.seq, Cause: cause,
	}
	return Event{
		Ext: ext, Suffix: "call." + name, Type: typ, Time: now, Data: data,
		ID: schema.EventID(typ, t.cfg.PBX, c.id, ext, strconv.Itoa(es.seq)),
	}, true
}

// endCall ends every extension of c not ended yet (cause says why),
// forgets c and remembers it ended.
func (t *Tracker) endCall(c *call, now time.Time, cause string) []Event {
	var out []Event
	var seen []string
	for _, m := range c.members {
		ext := m.Number
		if m.Kind != openapi.MemberExtension || slices.Contains(seen, ext) {
			continue
		}
		seen = append(seen, ext)
		es := c.exts[ext]
		if es == nil || es.phase == phaseNone || es.phase == phaseEnded {
			continue
		}
		_, lead := extPhase(c, ext)
		if ev, ok := t.move(c, ext, es, phaseEnded, lead, now, cause); ok {
			out = append(out, ev)
		}
	}
	t.forget(c)
	t.ended.add(c.id, now)
	return out
}

func (c *call) callMembers() []openapi.CallMember {
	out := make([]openapi.CallMember, len(c.members))
	for i, m := range c.members {
		out[i] = m.CallMember
	}
	return out
}

// snapshot returns c as a Call_Info.
func (c *call) snapshot() openapi.CallState {
	return openapi.CallState{CallID: c.id, Members: c.callMembers()}
}

// direction is the call's: inbound if a member is a caller on a trunk,
// else outbound if one is a callee on a trunk, else internal.
func direction(ms []openapi.CallMember) string {
	switch {
	case slices.ContainsFunc(ms, func(m openapi.CallMember) bool { return m.Kind == openapi.MemberInbound }):
		return schema.DirectionInbound
	case slices.ContainsFunc(ms, func(m openapi.CallMember) bool { return m.Kind == openapi.MemberOutbound }):
		return schema.DirectionOutbound
	}
	return schema.DirectionInternal
}

// trunk is the trunk of the call's first trunk leg with one.
func trunk(ms []openapi.CallMember) string {
	for _, m := range ms {
		if m.Kind != openapi.MemberExtension && m.TrunkName != "" {
			return m.TrunkName
		}
	}
	return ""
}

// other is the first member of the call that is not ext and has not hung
// up, else the first that is not ext; nil if there is none.
func other(ms []*member, ext string) *schema.CallParty {
	var found *member
	for _, m := range ms {
		if m.Kind == openapi.MemberExtension && m.Number == ext {
			continue
		}
		if m.phase != phaseEnded {
			found = m
			break
		}
		found = cmp.Or(found, m)
	}
	if found == nil {
		return nil
	}
	p := &schema.CallParty{Kind: string(found.Kind), Number: found.Number, TrunkName: found.TrunkName}
	switch found.Kind {
	case openapi.MemberInbound:
		p.Number = found.From
	case openapi.MemberOutbound:
		p.Number = found.To
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
