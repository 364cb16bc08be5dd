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
	if s.dropped > 0 {
		// In an overflow: the gap marker must go first, and neither it nor
		// the event waits, or a stuck consumer would cost DeliverTimeout
		// per frame.
		select {
		case s.events <- &Overflow{Dropped: s.dropped}:
			s.log.Info("pbx consumer caught up", "dropped", s.dropped)
			s.dropped = 0
		default:
			s.drop()
			return
		}
	}
	select {
	case s.events <- ev:
		return
	default:
	}
	if hb != nil {
		hb.setBusy(true, time.Now())
		defer func() { hb.setBusy(false, time.Now()) }()
	}
	t := time.NewTimer(s.cfg.DeliverTimeout)
	defer t.Stop()
	select {
	case s.events <- ev:
	case <-t.C:
		s.drop()
	case <-ctx.Done():
		// The session is closing: nobody is owed the event any more.
	}
}

// drop throws an event away because the consumer is too slow.
func (s *Session) drop() {
	s.dropped++
	if s.cfg.Hooks.FrameDropped != nil {
		s.cfg.Hooks.FrameDropped(string(DropOverflow))
	}
	if s.dropped == 1 {
		s.log.Warn("pbx consumer too slow: dropping events until it catches up", "event_buffer", s.cfg.EventBuffer, "deliver_timeout", s.cfg.DeliverTimeout)
	}
}
