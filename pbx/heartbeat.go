package pbx

import (
	"context"
	"sync"
	"time"
)

// heartbeatFrame is what the client sends; the PBX answers "heartbeat
// response".
var heartbeatFrame = []byte("heartbeat")

// heartbeat keeps one socket's liveness the way the SDK does, with two
// timers:
//   - ping: after PingAfter without any incoming frame, send "heartbeat";
//     if nothing at all arrives within PongTimeout after it, close the
//     socket;
//   - keepalive: KeepaliveEvery after an incoming frame, send "heartbeat",
//     and again every KeepaliveEvery until a "heartbeat response" arrives,
//     so that the PBX sees heartbeats on a busy socket too.
//
// The reader reports arrivals. While the reader is blocked handing an event
// to a slow consumer it cannot see arrivals, so the pong deadline is
// suspended then and counted again from when it resumes reading: a slow
// consumer never makes a healthy socket look dead.
type heartbeat struct {
	pingAfter, pongTimeout, keepalive time.Duration
	kick                              chan struct{}

	mu           sync.Mutex
	lastArrival  time.Time
	pingSentAt   time.Time // zero when no ping is outstanding
	keepaliveDue time.Time // zero when disarmed
	busy         bool      // the reader is blocked delivering an event
	resumedAt    time.Time
	expired      bool
}

func newHeartbeat(cfg Config, opened time.Time) *heartbeat {
	return &heartbeat{
		pingAfter:   cfg.PingAfter,
		pongTimeout: cfg.PongTimeout,
		keepalive:   cfg.KeepaliveEvery,
		kick:        make(chan struct{}, 1),
		lastArrival: opened,
	}
}

// arrived records an incoming frame; response is true for "heartbeat
// response".
func (h *heartbeat) arrived(now time.Time, response bool) {
	h.mu.Lock()
	h.lastArrival = now
	h.pingSentAt = time.Time{}
	switch {
	case response:
		h.keepaliveDue = time.Time{}
	case h.keepaliveDue.IsZero():
		h.keepaliveDue = now.Add(h.keepalive)
	}
	h.mu.Unlock()
	h.poke()
}

// setBusy marks the reader blocked on (or back from) a slow consumer.
func (h *heartbeat) setBusy(busy bool, now time.Time) {
	h.mu.Lock()
	h.busy = busy
	if !busy {
		h.resumedAt = now
	}
	h.mu.Unlock()
	h.poke()
}

func (h *heartbeat) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// timedOut reports whether the heartbeat closed the socket.
func (h *heartbeat) timedOut() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.expired
}

// step decides, at now, whether to send a heartbeat or give the socket up,
// and when to look again (zero: only when poked).
func (h *heartbeat) step(now time.Time) (send, expire bool, next time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if h.pingSentAt.IsZero() {
		if due := h.lastArrival.Add(h.pingAfter); now.Before(due) {
			earliest(due)
		} else {
			send = true
			h.pingSentAt = now
			earliest(now.Add(h.pongTimeout))
		}
	} else if !h.busy {
		from := h.pingSentAt
		if h.resumedAt.After(from) {
			from = h.resumedAt
		}
		deadline := from.Add(h.pongTimeout)
		if !now.Before(deadline) {
			h.expired = true
			return false, true, time.Time{}
		}
		earliest(deadline)
	}
	if !h.keepaliveDue.IsZero() {
		if !now.Before(h.keepaliveDue) {
			send = true
			h.keepaliveDue = now.Add(h.keepalive)
		}
		earliest(h.keepaliveDue)
	}
	return send, false, next
}

// run drives the timers of one socket until connCtx ends (the socket is
// done, or the session, sessionCtx, is). It closes the socket when the PBX
// went silent, when a heartbeat cannot be written, and when it returns, so
// that the reader's ReadMessage always ends.
func (h *heartbeat) run(sessionCtx, connCtx context.Context, c *conn) {
	defer c.ws.Close()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		send, expire, next := h.step(time.Now())
		if expire {
			return
		}
		if send {
			if err := c.write(heartbeatFrame); err != nil {
				return
			}
		}
		var timer <-chan time.Time
		if !next.IsZero() {
			t.Reset(time.Until(next))
			timer = t.C
		}
		select {
		case <-connCtx.Done():
			if sessionCtx.Err() != nil {
				c.closeGracefully()
			}
			return
		case <-h.kick:
		case <-timer:
		}
	}
}
