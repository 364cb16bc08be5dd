package pbx

import (
	"context"
	"time"
)

// deliver hands ev to the consumer under the slow-consumer policy (see the
// package doc). It runs on the socket goroutine only. hb, if not nil, is told
// while the reader is blocked so that the blocking does not count as the
// PBX's silence.
func (s *Session) deliver(ctx context.Context, hb *heartbeat, ev Event) {
	// A socket state change is never dropped: the consumer's idea of the
	// socket would stay wrong until the next change, which may never come.
	// Such events are rare (one per open or close), so waiting for the
	// consumer costs the socket little.
	_, must := ev.(*SocketState)
	if s.dropped > 0 {
		// In an overflow: the gap marker must go first, and neither it nor
		// the event waits, or a stuck consumer would cost DeliverTimeout
		// per frame.
		marker := &Overflow{Dropped: s.dropped}
		if must {
			if !s.send(ctx, hb, marker, 0) {
				return
			}
		} else if !s.events.push(marker) {
			s.drop()
			return
		}
		s.log.Info("pbx consumer caught up", "dropped", s.dropped)
		s.dropped = 0
	}
	if s.events.push(ev) {
		return
	}
	wait := s.cfg.DeliverTimeout
	if must {
		wait = 0
	}
	if !s.send(ctx, hb, ev, wait) && ctx.Err() == nil {
		s.drop()
	}
}

// send blocks until ev is delivered, ctx ends, or (if wait > 0) wait has
// passed; it reports whether ev was delivered. hb, if not nil, is told
// while the reader is blocked so that the blocking does not count as the
// PBX's silence.
func (s *Session) send(ctx context.Context, hb *heartbeat, ev Event, wait time.Duration) bool {
	if hb != nil {
		hb.setBusy(true, time.Now())
		defer func() { hb.setBusy(false, time.Now()) }()
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for !s.events.push(ev) {
		select {
		case <-s.events.room:
			// Taken from a full queue: try again (another value may be
			// stale, from a take while nobody waited).
		case <-timeout:
			return false
		case <-ctx.Done():
			// The session is closing: nobody is owed the event any more.
			return false
		}
	}
	return true
}

// drop throws an event away because the consumer is too slow.
func (s *Session) drop() {
	s.dropped++
	if s.cfg.Hooks.FrameDropped != nil {
		s.cfg.Hooks.FrameDropped(string(DropOverflow))
	}
	if s.dropped == 1 {
		// Once per overflow, and overflows are sampled too: a consumer
		// that keeps falling behind must not fill the log.
		if ok, suppressed := s.client.warns.Allow("consumer too slow", time.Now()); ok {
			s.log.Warn("pbx consumer too slow: dropping events until it catches up", "event_buffer", s.cfg.EventBuffer, "deliver_timeout", s.cfg.DeliverTimeout, "overflows_suppressed", suppressed)
		}
	}
}
