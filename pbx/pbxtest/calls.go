package pbxtest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Live calls. A call has members (extensions, and trunk legs for external
// parties) whose member_status moves as the reference's 30011 says: the
// caller ALERT (hearing ringback) and the callee RING, then ANSWERED and
// ANSWER once answered, HOLD, and BYE when it ends. Every change sends
// 30011 with the whole member list (as the PBX repeats it) and 30008 for
// each extension whose status changed (Ringing, Busy, Idle); the end sends
// 30012 and stores the CDRs of the extensions involved, as Server.Call
// does (with its 20049 to their Linkus sockets). The knobs below drive
// calls; the OpenAPI's call control endpoints (callctl.go) drive them the
// same way.

// Member statuses of 30011.
const (
	statusAlert    = "ALERT"
	statusRing     = "RING"
	statusAnswered = "ANSWERED"
	statusAnswer   = "ANSWER"
	statusHold     = "HOLD"
	statusBye      = "BYE"
)

// Why a call knob or endpoint refuses; callctl.go maps them to errcodes.
var (
	errNoCall     = errors.New("pbxtest: no such call")
	errNoChannel  = errors.New("pbxtest: no such channel")
	errWrongState = errors.New("pbxtest: the member's state does not allow that")
	errBadNumber  = errors.New("pbxtest: not a number that can be called")
)

// LiveMember is a member of a live call, as 30011 reports it.
type LiveMember struct {
	Kind      string // "extension", "inbound" or "outbound"
	Number    string // an extension's number
	From, To  string // a trunk leg's numbers
	TrunkName string // a trunk leg's trunk
	ChannelID string
	Status    string // member_status
}

// LiveCall is a call in progress.
type LiveCall struct {
	ID      string
	Members []LiveMember
}

type liveCall struct {
	id                string
	kind              string // 30012's type: Internal, Inbound or Outbound
	from, to          string // call_from and call_to
	started, answered time.Time
	members           []*liveMember
	pendingCallee     string        // click-to-call: rung once the caller answers
	xfer              *attendedXfer // an attended transfer under way
	replay            *Call         // a call Server.Call recorded: its durations and disposition
}

type liveMember struct {
	kind, number, from, to, trunk, channel string
	status, saved                          string // saved: the status before HOLD
}

// attendedXfer is B transferring A to C after consulting C: A is held.
type attendedXfer struct {
	held, transferor, target *liveMember
	transferorWas            string
}

func talking(status string) bool { return status == statusAnswer || status == statusAnswered }

// validNumber accepts what a phone can dial.
func validNumber(n string) bool {
	return n != "" && len(n) <= 32 && strings.Trim(n, "0123456789*#+") == ""
}

// StartCall starts a call from one number to another and returns its
// call_id: an internal call between two extensions, an inbound one from an
// external number to an extension, or an outbound one from an extension to
// an external number. The caller is ALERT and the callee RING.
func (s *Server) StartCall(from, to string) (string, error) {
	var id string
	err := s.change(func(ls *liveState, tx *liveTx) error {
		c, err := s.startCall(ls, from, to)
		if err != nil {
			return err
		}
		id = c.id
		ls.publish(c, tx)
		return nil
	})
	return id, err
}

// startCall makes a call between two parties. s.mu must be held.
func (s *Server) startCall(ls *liveState, from, to string) (*liveCall, error) {
	fromExt, toExt := s.exts[from] != nil, s.exts[to] != nil
	kind := "Internal"
	switch {
	case !validNumber(from) || !validNumber(to) || from == to:
		return nil, fmt.Errorf("%w: %q to %q", errBadNumber, from, to)
	case fromExt && !toExt:
		kind = "Outbound"
	case !fromExt && toExt:
		kind = "Inbound"
	case !fromExt && !toExt:
		return nil, fmt.Errorf("%w: neither %q nor %q is an extension", errBadNumber, from, to)
	}
	c := ls.newCall(kind, from, to)
	caller, callee := s.member(ls, from, true, to), s.member(ls, to, false, from)
	caller.status, callee.status = statusAlert, statusRing
	c.members = []*liveMember{caller, callee}
	return c, nil
}

func (ls *liveState) newCall(kind, from, to string) *liveCall {
	ls.nextCall++
	c := &liveCall{id: fmt.Sprintf("%d.%d", time.Now().Unix(), ls.nextCall), kind: kind, from: from, to: to, started: time.Now()}
	ls.calls[c.id] = c
	return c
}

// member makes a member for number: the extension if there is one, else a
// trunk leg (inbound for a caller, outbound for a callee). other is the
// other party's number. s.mu must be held.
func (s *Server) member(ls *liveState, number string, caller bool, other string) *liveMember {
	ls.nextChannel++
	if s.exts[number] != nil {
		return &liveMember{kind: "extension", number: number, channel: fmt.Sprintf("PJSIP/%s-%08x", number, ls.nextChannel)}
	}
	m := &liveMember{kind: "outbound", from: other, to: number, trunk: defaultTrunkName}
	if caller {
		m.kind, m.from, m.to = "inbound", number, other
	}
	m.channel = fmt.Sprintf("PJSIP/%s-%08x", defaultTrunkName, ls.nextChannel)
	return m
}

// AnswerCall answers the call's ringing members: RING becomes ANSWER and
// ALERT ANSWERED. For a click-to-call whose caller is ringing, answering
// rings the callee.
func (s *Server) AnswerCall(callID string) error {
	return s.change(func(ls *liveState, tx *liveTx) error {
		c := ls.calls[callID]
		if c == nil {
			return errNoCall
		}
		if err := s.answer(ls, c); err != nil {
			return err
		}
		ls.publish(c, tx)
		return nil
	})
}

func (s *Server) answer(ls *liveState, c *liveCall) error {
	if c.pendingCallee != "" {
		s.ringCallee(ls, c)
		return nil
	}
	rung := false
	for _, m := range c.members {
		switch m.status {
		case statusRing:
			m.status, rung = statusAnswer, true
		case statusAlert:
			m.status = statusAnswered
		}
	}
	if !rung {
		return fmt.Errorf("%w: nobody is ringing", errWrongState)
	}
	if c.answered.IsZero() {
		c.answered = time.Now()
	}
	return nil
}

// Hold puts the member with the channel on hold; it must be talking.
func (s *Server) Hold(channelID string) error {
	return s.memberChange(channelID, func(_ *liveCall, m *liveMember) error {
		if !talking(m.status) {
			return fmt.Errorf("%w: %s is %s", errWrongState, channelID, m.status)
		}
		m.saved, m.status = m.status, statusHold
		return nil
	})
}

// Unhold takes the member with the channel off hold.
func (s *Server) Unhold(channelID string) error {
	return s.memberChange(channelID, func(_ *liveCall, m *liveMember) error {
		if m.status != statusHold {
			return fmt.Errorf("%w: %s is %s", errWrongState, channelID, m.status)
		}
		m.status = cmp.Or(m.saved, statusAnswer)
		return nil
	})
}

// memberChange applies f to the member with the channel and publishes.
func (s *Server) memberChange(channelID string, f func(c *liveCall, m *liveMember) error) error {
	return s.change(func(ls *liveState, tx *liveTx) error {
		c, m := ls.find(channelID)
		if c == nil {
			return errNoChannel
		}
		if err := f(c, m); err != nil {
			return err
		}
		ls.publish(c, tx)
		return nil
	})
}

// find returns the live call and member with the channel; nil if none.
func (ls *liveState) find(channelID string) (*liveCall, *liveMember) {
	for _, c := range ls.calls {
		for _, m := range c.members {
			if m.channel == channelID && m.status != statusBye {
				return c, m
			}
		}
	}
	return nil, nil
}

// Hangup hangs up the member with the channel. In a two-party call that
// ends the call; with more members, only that member leaves.
func (s *Server) Hangup(channelID string) error {
	return s.change(func(ls *liveState, tx *liveTx) error {
		c, m := ls.find(channelID)
		if c == nil {
			return errNoChannel
		}
		s.hangupMember(ls, c, m, tx)
		return nil
	})
}

// EndCall hangs up every member of the call.
func (s *Server) EndCall(callID string) error {
	return s.change(func(ls *liveState, tx *liveTx) error {
		c := ls.calls[callID]
		if c == nil {
			return errNoCall
		}
		s.end(ls, c, tx, true)
		return nil
	})
}

// LiveCalls returns the calls in progress, by call_id.
func (s *Server) LiveCalls() []LiveCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []LiveCall
	for _, c := range s.live().calls {
		out = append(out, c.snapshot())
	}
	slices.SortFunc(out, func(a, b LiveCall) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (c *liveCall) snapshot() LiveCall {
	lc := LiveCall{ID: c.id}
	for _, m := range c.members {
		lc.Members = append(lc.Members, LiveMember{Kind: m.kind, Number: m.number, From: m.from, To: m.to,
			TrunkName: m.trunk, ChannelID: m.channel, Status: m.status})
	}
	return lc
}

// publish sends the call's 30011 and the 30008 of its extensions whose
// status changed.
func (ls *liveState) publish(c *liveCall, tx *liveTx) {
	tx.emit(typeCallState, ls.callInfo(c))
	for _, m := range c.members {
		if m.kind != "extension" {
			continue
		}
		st := "Busy"
		switch m.status {
		case statusRing:
			st = "Ringing"
		case statusBye:
			st = "Idle"
		}
		if ls.extStatus[m.number] != st {
			ls.extStatus[m.number] = st
			tx.emit(typeExtCallStatus, map[string]any{"extension": m.number, "status": st})
		}
	}
}

// callInfo renders a Call_Info, with the quirks' changes.
func (ls *liveState) callInfo(c *liveCall) map[string]any {
	q := ls.quirks
	members := []any{}
	for i, m := range c.members {
		inner := map[string]any{"channel_id": m.channel, "member_status": m.status, "call_path": ""}
		if m.kind == "extension" {
			inner["number"] = m.number
		} else {
			inner["from"], inner["to"], inner["trunk_name"] = m.from, m.to, m.trunk
		}
		if q.UnknownStatus != "" && talking(m.status) {
			inner["member_status"] = q.UnknownStatus
		}
		if i == 0 && q.DropMemberField != "" {
			delete(inner, q.DropMemberField)
		}
		if q.ExtraFields {
			inner["sim_member_field"] = 7
		}
		members = append(members, map[string]any{m.kind: inner})
	}
	return map[string]any{"call_id": c.id, "members": members}
}
