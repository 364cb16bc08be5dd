package pbx

import (
	"sync"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

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
//
// Both timers are one runtime timer (time.AfterFunc), not a goroutine: an
// idle socket costs no goroutine of its own, which matters with thousands
// of them. The timer's function runs only when something is due, sends the
// heartbeat (bounded by the write timeout) or closes the socket, and arms
// the timer for the next thing due.
type heartbeat struct {
	pingAfter, pongTimeout, keepalive time.Duration
	c                                 *wire.Conn

	mu           sync.Mutex
	lastArrival  time.Time
	pingSentAt   time.Time // zero when no ping is outstanding
	keepaliveDue time.Time // zero when disarmed
	busy         bool      // the reader is blocked delivering an event
	resumedAt    time.Time
	expired      bool
	timer        *time.Timer
	at           time.Time // when timer fires; zero when it is not armed
	stopped      bool
	running      sync.WaitGroup // timer functions under way
}

// newHeartbeat returns a socket's heartbeat, not yet running: step and due
// can be tried on it without a socket.
func newHeartbeat(cfg *Config, opened time.Time) *heartbeat {
	return &heartbeat{
		pingAfter:   cfg.PingAfter,
		pongTimeout: cfg.PongTimeout,
		keepalive:   cfg.KeepaliveEvery,
		lastArrival: opened,
	}
}

// start arms the timer for the socket c.
func (h *heartbeat) start(c *wire.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.c = c
	h.timer = time.AfterFunc(time.Hour, h.fire)
	h.rearm(time.Now())
}

// stop disarms the timer and waits for a timer function under way (a
// heartbeat being written), so that nothing touches the socket afterwards.
func (h *heartbeat) stop() {
	h.mu.Lock()
	h.stopped = true
	if h.timer != nil {
		h.timer.Stop()
	}
	h.mu.Unlock()
	h.running.Wait()
}

// fire is the timer's function.
func (h *heartbeat) fire() {
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return
	}
	h.running.Add(1)
	defer h.running.Done()
	h.at = time.Time{}
	send, expire, next := h.stepLocked(time.Now())
	if !expire && !next.IsZero() {
		h.arm(next)
	}
	c := h.c
	h.mu.Unlock()
	switch {
	case expire:
		// The reader's ReadMessage ends with an error, and the reader asks
		// timedOut why.
		c.WS.Close()
	case send:
		if err := c.Write(wire.HeartbeatFrame); err != nil {
			c.WS.Close()
		}
	}
}

// arm sets the timer to fire at t. h.mu must be held.
func (h *heartbeat) arm(t time.Time) {
	h.at = t
	h.timer.Reset(time.Until(t))
}

// rearm fires the timer sooner if something became due before it. h.mu must
// be held.
func (h *heartbeat) rearm(now time.Time) {
	if h.timer == nil || h.stopped {
		return
	}
	if next := h.dueLocked(now); !next.IsZero() && (h.at.IsZero() || next.Before(h.at)) {
		h.arm(next)
	}
}

// arrived records an incoming frame; response is true for "heartbeat
// response".
func (h *heartbeat) arrived(now time.Time, response bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastArrival = now
	h.pingSentAt = time.Time{}
	switch {
	case response:
		h.keepaliveDue = time.Time{}
	case h.keepaliveDue.IsZero():
		h.keepaliveDue = now.Add(h.keepalive)
	}
	// Whatever was due moved later, except a newly armed keepalive, which
	// may come before what the timer waits for.
	h.rearm(now)
}

// setBusy marks the reader blocked on (or back from) a slow consumer.
func (h *heartbeat) setBusy(busy bool, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.busy = busy
	if !busy {
		h.resumedAt = now
		h.rearm(now)
	}
}

// timedOut reports whether the heartbeat closed the socket.
func (h *heartbeat) timedOut() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.expired
}

// step decides, at now, whether to send a heartbeat or give the socket up,
// and when to look again (zero: only when the reader reports something).
func (h *heartbeat) step(now time.Time) (send, expire bool, next time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stepLocked(now)
}

func (h *heartbeat) stepLocked(now time.Time) (send, expire bool, next time.Time) {
	if h.pingSentAt.IsZero() {
		if !now.Before(h.lastArrival.Add(h.pingAfter)) {
			send = true
			h.pingSentAt = now
		}
	} else if d := h.pongDeadline(); !h.busy && !now.Before(d) {
		h.expired = true
		return false, true, time.Time{}
	}
	if !h.keepaliveDue.IsZero() && !now.Before(h.keepaliveDue) {
		send = true
		h.keepaliveDue = now.Add(h.keepalive)
	}
	return send, false, h.dueLocked(now)
}

// dueLocked returns when the next thing is due (the ping, the pong deadline
// or the keepalive), zero if nothing is; never before now.
func (h *heartbeat) dueLocked(now time.Time) time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	switch {
	case h.pingSentAt.IsZero():
		earliest(h.lastArrival.Add(h.pingAfter))
	case !h.busy:
		earliest(h.pongDeadline())
	}
	if !h.keepaliveDue.IsZero() {
		earliest(h.keepaliveDue)
	}
	if !next.IsZero() && next.Before(now) {
		next = now
	}
	return next
}

// pongDeadline is when an outstanding ping goes unanswered for too long:
// PongTimeout after the ping, or after the reader resumed from a slow
// consumer if that was later.
func (h *heartbeat) pongDeadline() time.Time {
	from := h.pingSentAt
	if h.resumedAt.After(from) {
		from = h.resumedAt
	}
	return from.Add(h.pongTimeout)
}
