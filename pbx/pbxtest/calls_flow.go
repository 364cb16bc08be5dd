package pbxtest

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// hangupMember hangs up m: the whole call when at most two members are
// left; otherwise m leaves, and an attended transfer under way completes
// (the transferor left), is aborted (the target left) or is dropped (the
// held party left). s.mu must be held.
func (s *Server) hangupMember(ls *liveState, c *liveCall, m *liveMember, tx *liveTx) {
	active := 0
	for _, o := range c.members {
		if o.status != statusBye {
			active++
		}
	}
	if active <= 2 {
		s.end(ls, c, tx, true)
		return
	}
	m.status = statusBye
	if x := c.xfer; x != nil {
		switch m {
		case x.transferor: // complete: A goes to C
			x.held.status = cmp.Or(x.held.saved, statusAnswered)
			if x.target.status == statusRing {
				x.held.status = statusAlert
			}
		case x.target: // abort: A back with B
			x.held.status = cmp.Or(x.held.saved, statusAnswered)
			x.transferor.status = x.transferorWas
		}
		c.xfer = nil
	}
	ls.publish(c, tx)
	c.members = slices.DeleteFunc(c.members, func(o *liveMember) bool { return o == m })
}

// end hangs up every member: 30011 with all of them BYE, 30008 Idle, 30012,
// and (store) the extensions' CDRs once the frames are out. s.mu must be
// held.
func (s *Server) end(ls *liveState, c *liveCall, tx *liveTx, store bool) {
	for _, m := range c.members {
		m.status = statusBye
	}
	ls.publish(c, tx)
	cdr := ls.cdrMsg(c, time.Now())
	tx.emit(typeNewCDR, cdr)
	delete(ls.calls, c.id)
	if store {
		talk := cdr["talk_duration"].(int)
		tx.after = append(tx.after, func() { s.storeLiveCDRs(c, talk) })
	}
}

// cdrMsg renders 30012's msg as the reference's example has it: empty
// fields are a single space, and pin_code is there (a client must not keep
// it).
func (ls *liveState) cdrMsg(c *liveCall, end time.Time) map[string]any {
	blank := func(v string) string { return cmp.Or(v, " ") }
	talk, total, status := 0, int(end.Sub(c.started).Seconds()), "NO ANSWER"
	if !c.answered.IsZero() {
		talk, status = int(end.Sub(c.answered).Seconds()), "ANSWERED"
	}
	if r := c.replay; r != nil {
		talk, total, status = r.TalkDuration, r.TalkDuration+5, r.Disposition
		if status == "FAILED" { // not one of 30012's statuses
			status = "NO ANSWER"
		}
	}
	var srcTrunk, dstTrunk, did, recording string
	switch c.kind {
	case "Inbound":
		srcTrunk, did = defaultTrunkName, c.to
	case "Outbound":
		dstTrunk = defaultTrunkName
	}
	if status == "ANSWERED" {
		recording = fmt.Sprintf("%s-%s-%s-%s-%s.wav", c.started.Format("20060102150405"), c.id, c.from, c.to, c.kind)
	}
	return map[string]any{
		"call_id": c.id, "time_start": c.started.Format("2006-01-02 15:04:05"),
		"call_from": c.from, "call_to": c.to, "call_duration": total, "talk_duration": talk,
		"src_trunk_name": blank(srcTrunk), "dst_trunk_name": blank(dstTrunk), "pin_code": blank(ls.quirks.PinCode),
		"status": status, "type": c.kind, "recording": blank(recording), "did_number": blank(did), "agent_ring_time": 0,
	}
}

// storeLiveCDRs stores the CDRs of the call's extensions as Server.Call
// does: the caller's outgoing call, the callee's incoming or missed one.
func (s *Server) storeLiveCDRs(c *liveCall, talk int) {
	s.mu.Lock()
	fromExt, toExt := s.exts[c.from] != nil, s.exts[c.to] != nil
	s.mu.Unlock()
	if fromExt {
		_, _ = s.Call(c.from, Call{Kind: Outgoing, Peer: c.to, TalkDuration: talk, Time: c.started, live: true})
	}
	if toExt {
		in := Call{Kind: Incoming, Peer: c.from, TalkDuration: talk, Time: c.started, live: true}
		if c.answered.IsZero() {
			in.Kind, in.TalkDuration = Missed, 0
		}
		_, _ = s.Call(c.to, in)
	}
}

// dialCall is call/dial: the caller's phone rings first (RING); once it
// answers (at once with autoAnswer) the callee is rung. s.mu must be held.
func (s *Server) dialCall(ls *liveState, caller, callee string, autoAnswer bool, tx *liveTx) (*liveCall, error) {
	if s.exts[caller] == nil {
		return nil, errNoChannel
	}
	if !validNumber(callee) || callee == caller {
		return nil, errBadNumber
	}
	kind := "Internal"
	if s.exts[callee] == nil {
		kind = "Outbound"
	}
	c := ls.newCall(kind, caller, callee)
	m := s.member(ls, caller, true, callee)
	m.status = statusRing
	c.members, c.pendingCallee = []*liveMember{m}, callee
	ls.publish(c, tx)
	if autoAnswer {
		s.ringCallee(ls, c)
		ls.publish(c, tx)
	}
	return c, nil
}

// ringCallee rings a click-to-call's callee once its caller answered.
func (s *Server) ringCallee(ls *liveState, c *liveCall) {
	callee := s.member(ls, c.pendingCallee, false, c.from)
	callee.status = statusRing
	c.members[0].status = statusAlert
	c.members = append(c.members, callee)
	c.pendingCallee = ""
}

// twoParty returns the other member of a two-party call in which m talks.
func twoParty(c *liveCall, m *liveMember) (*liveMember, error) {
	if !talking(m.status) || c.xfer != nil || len(c.members) != 2 {
		return nil, fmt.Errorf("%w: %s is not talking in a two-party call", errWrongState, m.channel)
	}
	if c.members[0] == m {
		return c.members[1], nil
	}
	return c.members[0], nil
}

// blindTransfer moves A (the channel) to number: the other party B leaves,
// the target rings and A hears ringback. s.mu must be held.
func (s *Server) blindTransfer(ls *liveState, channelID, number string, tx *liveTx) error {
	c, a := ls.find(channelID)
	if c == nil {
		return errNoChannel
	}
	b, err := twoParty(c, a)
	if err != nil {
		return err
	}
	if !validNumber(number) || number == a.number || number == b.number {
		return errBadNumber
	}
	target := s.member(ls, number, false, cmp.Or(a.number, a.from))
	b.status, target.status, a.status = statusBye, statusRing, statusAlert
	c.members = append(c.members, target)
	ls.publish(c, tx)
	c.members = slices.DeleteFunc(c.members, func(o *liveMember) bool { return o == b })
	return nil
}

// attendedTransfer starts B's (the channel's) attended transfer of A to
// number: A is held, the target rings, B hears ringback. s.mu must be held.
func (s *Server) attendedTransfer(ls *liveState, channelID, number string, tx *liveTx) error {
	c, b := ls.find(channelID)
	if c == nil {
		return errNoChannel
	}
	a, err := twoParty(c, b)
	if err != nil {
		return err
	}
	if !validNumber(number) || number == a.number || number == b.number {
		return errBadNumber
	}
	target := s.member(ls, number, false, cmp.Or(b.number, b.from))
	c.xfer = &attendedXfer{held: a, transferor: b, target: target, transferorWas: b.status}
	a.saved, a.status = a.status, statusHold
	b.status, target.status = statusAlert, statusRing
	c.members = append(c.members, target)
	ls.publish(c, tx)
	return nil
}

// attendedOperate is the second call of an attended transfer, by the
// transferor's channel: complete, abort, threeway or swap (the S-Series
// API's operations; the P-Series page's values were not retrieved).
func (s *Server) attendedOperate(ls *liveState, channelID, op string, tx *liveTx) error {
	c, m := ls.find(channelID)
	if c == nil {
		return errNoChannel
	}
	x := c.xfer
	if x == nil || m != x.transferor {
		return fmt.Errorf("%w: %s has no attended transfer under way", errWrongState, channelID)
	}
	switch op {
	case "complete":
		s.hangupMember(ls, c, x.transferor, tx)
		return nil
	case "abort":
		s.hangupMember(ls, c, x.target, tx)
		return nil
	case "threeway":
		if x.target.status != statusAnswer {
			return fmt.Errorf("%w: the target has not answered", errWrongState)
		}
		x.held.status, c.xfer = cmp.Or(x.held.saved, statusAnswered), nil
	case "swap":
		switch {
		case x.held.status == statusHold && x.target.status == statusAnswer:
			x.held.status = cmp.Or(x.held.saved, statusAnswered)
			x.target.saved, x.target.status = x.target.status, statusHold
		case x.target.status == statusHold:
			x.target.status = cmp.Or(x.target.saved, statusAnswer)
			x.held.saved, x.held.status = x.held.status, statusHold
		default:
			return fmt.Errorf("%w: nothing to swap", errWrongState)
		}
	default:
		return errBadNumber
	}
	ls.publish(c, tx)
	return nil
}

// echoCall sends the OpenAPI events of a finished call that Server.Call
// recorded for ext (the simulator's call generator): the call rings, is
// answered unless missed, and ends, with its 30012; the CDR is stored
// already. Nothing happens without an event socket.
func (s *Server) echoCall(ext string, call Call) {
	s.mu.Lock()
	none := s.ls == nil || len(s.ls.socks) == 0
	s.mu.Unlock()
	if none {
		return
	}
	from, to := call.Peer, ext
	if call.Kind == Outgoing {
		from, to = ext, call.Peer
	}
	_ = s.change(func(ls *liveState, tx *liveTx) error {
		c, err := s.startCall(ls, from, to)
		if err != nil {
			return err
		}
		c.started, c.replay = call.Time, &call
		ls.publish(c, tx)
		if call.Kind != Missed {
			_ = s.answer(ls, c)
			ls.publish(c, tx)
		}
		s.end(ls, c, tx, false)
		return nil
	})
}
