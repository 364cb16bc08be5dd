package pbxtest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// CallLoad is a steady stream of live calls, for benchmarks: Rate calls
// are started a second for Duration; each rings for Ring, talks for Talk
// and hangs up, and every change goes out on the event socket as any live
// call's does (30011 with the whole member list, 30008 for the extensions
// whose status moved, 30012 at the end). Every other call is internal
// (two extensions), the others inbound from an external number through
// the trunk. The extensions are taken in turn: with at least 1.5 × Rate ×
// (Ring + Talk) of them, none is in two calls at once.
//
// The calls leave no CDR records, so no 20049 reaches a Linkus socket and
// no catch-up query follows: the load is the event socket's alone.
type CallLoad struct {
	Exts     []string
	Rate     float64
	Duration time.Duration
	Ring     time.Duration
	Talk     time.Duration
}

// The phases of a load call's 30011 frames, the indexes of LoadCall.Sent.
const (
	PhaseRinging = iota
	PhaseAnswered
	PhaseEnded
)

// LoadCall is one call of a CallLoad: its call_id, the extensions in it,
// and when each of its three 30011 frames (PhaseRinging, PhaseAnswered,
// PhaseEnded) was about to be written to the first socket subscribed to
// 30011, in Unix nanoseconds: the frame's send time. 0 means the frame
// went to no socket (none was subscribed), or the call never got there.
type LoadCall struct {
	ID   string   `json:"call_id"`
	Exts []string `json:"exts"`
	Sent [3]int64 `json:"sent_ns"`
}

// CallLoadResult is what RunCallLoad did.
type CallLoadResult struct {
	Calls []LoadCall `json:"calls"`
	// Frames counts the 30011 frames written, to every socket.
	Frames int `json:"frames"`
	// MaxLag is how much later than planned the latest change was made:
	// a simulator too slow for the rate lags, and then sends fewer frames
	// a second than asked.
	MaxLag time.Duration `json:"max_lag_ns"`
}

// loadStep is one change of one call: its phase and when it is due.
type loadStep struct {
	call  int
	phase int
	due   time.Time
}

// RunCallLoad makes the calls of l and returns once the last has ended,
// or when ctx ends (with what was done so far and ctx's error; calls
// under way are left live).
func (s *Server) RunCallLoad(ctx context.Context, l CallLoad) (CallLoadResult, error) {
	if err := s.checkLoad(l); err != nil {
		return CallLoadResult{}, err
	}
	n := max(1, int(l.Rate*l.Duration.Seconds()))
	res := CallLoadResult{Calls: make([]LoadCall, n)}
	start := time.Now()
	offsets := [3]time.Duration{0, l.Ring, l.Ring + l.Talk}
	due := func(call, phase int) time.Time {
		return start.Add(time.Duration(float64(call)/l.Rate*float64(time.Second)) + offsets[phase])
	}
	// next[p] is the next call due for phase p: each phase's steps are in
	// the calls' order, and a call's phase comes after its previous one.
	var next [3]int
	ext := 0
	for next[PhaseEnded] < n {
		st := loadStep{call: -1}
		for p := PhaseRinging; p <= PhaseEnded; p++ {
			if next[p] >= n || p > PhaseRinging && next[p] >= next[p-1] {
				continue
			}
			if d := due(next[p], p); st.call < 0 || d.Before(st.due) {
				st = loadStep{call: next[p], phase: p, due: d}
			}
		}
		if wait := time.Until(st.due); wait > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.MaxLag = max(res.MaxLag, time.Since(st.due))
		c := &res.Calls[st.call]
		if st.phase == PhaseRinging {
			c.Exts, ext = l.parties(st.call, ext)
		}
		if err := s.loadStep(c, st.phase, &res.Frames); err != nil {
			return res, fmt.Errorf("pbxtest: call load, call %d: %w", st.call, err)
		}
		next[st.phase]++
	}
	return res, nil
}

func (s *Server) checkLoad(l CallLoad) error {
	switch {
	case l.Rate <= 0 || l.Duration <= 0 || l.Ring < 0 || l.Talk < 0:
		return errors.New("pbxtest: CallLoad needs a positive Rate and Duration, and Ring and Talk not negative")
	case len(l.Exts) < 2:
		return errors.New("pbxtest: CallLoad needs at least two extensions")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range l.Exts {
		if s.exts[e] == nil {
			return fmt.Errorf("pbxtest: CallLoad: no extension %q", e)
		}
	}
	return nil
}

// parties returns call i's parties, caller first, taking the extensions
// in turn from next; and the next extension to take. Even calls are
// internal, odd ones inbound from an external number.
func (l CallLoad) parties(i, next int) ([]string, int) {
	n := len(l.Exts)
	if i%2 == 0 {
		return []string{l.Exts[next%n], l.Exts[(next+1)%n]}, next + 2
	}
	return []string{fmt.Sprintf("5552%04d", i%10000), l.Exts[next%n]}, next + 1
}

// loadStep makes one change of a load call and times its 30011 frame.
// For the ringing phase c.Exts holds the parties, caller first; the
// external caller is taken out of it once the call exists.
func (s *Server) loadStep(c *LoadCall, phase int, frames *int) error {
	return s.change(func(ls *liveState, tx *liveTx) error {
		tx.sent = func(em emission, at time.Time) {
			if em.typ != typeCallState {
				return
			}
			*frames++
			if c.Sent[phase] == 0 {
				c.Sent[phase] = at.UnixNano()
			}
		}
		if phase == PhaseRinging {
			lc, err := s.startCall(ls, c.Exts[0], c.Exts[1])
			if err != nil {
				return err
			}
			c.ID = lc.id
			if s.exts[c.Exts[0]] == nil {
				c.Exts = c.Exts[1:]
			}
			ls.publish(lc, tx)
			return nil
		}
		lc := ls.calls[c.ID]
		if lc == nil {
			return fmt.Errorf("%w: %s ended before its %s", errNoCall, c.ID, map[int]string{PhaseAnswered: "answer", PhaseEnded: "end"}[phase])
		}
		if phase == PhaseAnswered {
			if err := s.answer(ls, lc); err != nil {
				return err
			}
			ls.publish(lc, tx)
			return nil
		}
		s.end(ls, lc, tx, false)
		return nil
	})
}
