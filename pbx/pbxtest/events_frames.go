package pbxtest

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// MsgStyle is how the simulator sends an event's msg: the reference's
// examples show a JSON string for most events and an object for 30034-30036.
type MsgStyle int

// The msg styles.
const (
	// MsgAsDocumented sends msg as a JSON string holding the document,
	// except for 30034-30036, whose examples show an object.
	MsgAsDocumented MsgStyle = iota
	// MsgAsString sends every msg as a string.
	MsgAsString
	// MsgAsObject sends every msg as an object.
	MsgAsObject
	// MsgAlternating sends string and object in turn.
	MsgAlternating
)

// EventQuirks make the event socket differ from the reference's happy path,
// as firmware versions may. The zero value is a well-behaved PBX.
type EventQuirks struct {
	MsgStyle MsgStyle
	// UnknownStatus, if set, is sent as the member_status of every member
	// that is talking (ANSWER or ANSWERED): a status the reference does
	// not list.
	UnknownStatus string
	// DropMemberField, if set, is left out of the first member of every
	// call's members: "channel_id", "member_status" or "number", say.
	DropMemberField string
	// ExtraFields adds fields the reference does not list to every frame,
	// msg and member.
	ExtraFields bool
	// VaryingSN sends another sn with every frame, in no order: a client
	// that takes sn for a sequence number drops or reorders events.
	VaryingSN bool
	// NeverAckSubscribe leaves every topic_list unanswered (the socket
	// stays open and answers heartbeats).
	NeverAckSubscribe bool
	// PinCode is sent as 30012's pin_code instead of the PBX's " ": a
	// client must not keep it.
	PinCode string
}

// SetEventQuirks makes the event socket misbehave as q says, from the next
// frame on; EventQuirks{} restores a well-behaved PBX.
func (s *Server) SetEventQuirks(q EventQuirks) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live().quirks = q
}

// emission is an event to send.
type emission struct {
	typ int
	msg map[string]any
}

// liveTx is what one change sends, and what it does once the frames are
// out (storing CDRs, which takes the server's lock).
type liveTx struct {
	ems   []emission
	after []func()
	// sent, if set, is told each frame's emission just before the frame
	// is written to a socket (callload.go times frames with it).
	sent func(em emission, at time.Time)
}

func (tx *liveTx) emit(typ int, msg map[string]any) {
	tx.ems = append(tx.ems, emission{typ, msg})
}

// change runs f as one step: it changes the state under s.mu and collects
// the events, which are sent once s.mu is released, in order, before any
// later change's (emitMu); then the after functions run.
func (s *Server) change(f func(ls *liveState, tx *liveTx) error) error {
	ls := s.liveLocked()
	ls.emitMu.Lock()
	defer ls.emitMu.Unlock()
	var tx liveTx
	type out struct {
		em    emission
		socks []*eventSocket
		frame []byte
	}
	s.mu.Lock()
	err := f(ls, &tx)
	outs := make([]out, 0, len(tx.ems))
	for _, em := range tx.ems {
		if socks := s.eventSubscribers(em.typ); len(socks) > 0 {
			outs = append(outs, out{em, socks, ls.render(em)})
		}
	}
	s.mu.Unlock()
	for _, o := range outs {
		for _, c := range o.socks {
			if tx.sent != nil {
				tx.sent(o.em, time.Now())
			}
			c.send(o.frame)
		}
	}
	for _, a := range tx.after {
		a()
	}
	return err
}

// render builds the frame {"type","sn","msg"} of an emission, as the quirks
// say. s.mu must be held.
func (ls *liveState) render(em emission) []byte {
	q := ls.quirks
	ls.frames++
	msg := em.msg
	if q.ExtraFields {
		msg = maps.Clone(msg)
		msg["sim_new_field"] = map[string]any{"nested": []int{1, 2}}
	}
	inner := mustJSON(msg)
	asObject := false
	switch q.MsgStyle {
	case MsgAsDocumented:
		asObject = em.typ >= typeSystemInfo && em.typ <= typeSystemAlert
	case MsgAsObject:
		asObject = true
	case MsgAlternating:
		asObject = ls.frames%2 == 0
	}
	var m any = string(inner)
	if asObject {
		m = json.RawMessage(inner)
	}
	sn := ls.serial
	if q.VaryingSN {
		sn = fmt.Sprintf("%s%04d", ls.serial[:8], (ls.frames*7919)%10000)
	}
	frame := map[string]any{"type": em.typ, "sn": sn, "msg": m}
	if q.ExtraFields {
		frame["sim_envelope_field"] = true
	}
	return mustJSON(frame)
}

// SendEventRaw sends frame as is to every subscribed event socket: for
// malformed frames.
func (s *Server) SendEventRaw(frame string) {
	s.FloodEvents(1, frame)
}

// FloodEvents sends frame n times, as fast as the sockets take them, to
// every subscribed event socket, and returns when all have been written (or
// a socket was dropped for not taking them).
func (s *Server) FloodEvents(n int, frame string) {
	s.mu.Lock()
	var socks []*eventSocket
	for c := range s.live().socks {
		if c.topics != nil {
			socks = append(socks, c)
		}
	}
	s.mu.Unlock()
	b := []byte(frame)
	for _, c := range socks {
		for i := 0; i < n && c.send(b); i++ {
		}
	}
}

// NotifyRegistration sends 30007 for ext: kind is Sip, Mobile, Desktop,
// Web or Pad, status Registered or Unregistered.
func (s *Server) NotifyRegistration(ext, kind, status, ip string) {
	_ = s.change(func(_ *liveState, tx *liveTx) error {
		tx.emit(typeRegistration, map[string]any{"extension": ext, "kind": kind, "status": status, "registered_ip": ip})
		return nil
	})
}

// SetPresence sends 30009 for ext with status (available, away,
// business_trip, do_not_disturb, lunch or off_work).
func (s *Server) SetPresence(ext, status string) {
	_ = s.change(func(_ *liveState, tx *liveTx) error {
		tx.emit(typePresence, map[string]any{"extension": ext, "status": status})
		return nil
	})
}

// NotifySystemEvent sends a system event: typ is 30034 (information),
// 30035 (warning) or 30036 (alert); create_time is now.
func (s *Server) NotifySystemEvent(typ int, name, eventType, level, content string) {
	_ = s.change(func(_ *liveState, tx *liveTx) error {
		tx.emit(typ, map[string]any{"event_name": name, "event_type": eventType, "event_level": level,
			"event_content": content, "create_time": time.Now().Format("2006/01/02 15:04:05")})
		return nil
	})
}
