package pbx

import (
	"testing"
	"time"
)

// TestHeartbeatStep: the SDK's two timers as one step function, from a
// socket opened at t0 with ping after 30s, pong timeout 20s and keepalive
// 35s.
func TestHeartbeatStep(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	type op struct {
		arrive   float64 // > 0: a frame arrives at this second
		response bool
		busy     *bool   // set the reader busy (true) or back (false) at step
		step     float64 // >= 0: step at this second and check
		send     bool
		expire   bool
		next     float64 // -1: nothing due
	}
	yes, no := true, false
	cases := []struct {
		name string
		ops  []op
	}{
		{"silent socket: ping at 30s, give up 20s later", []op{
			{step: 0, next: 30},
			{step: 30, send: true, next: 50},
			{step: 49, next: 50},
			{step: 50, expire: true, next: -1},
		}},
		{"any frame answers the ping", []op{
			{step: 30, send: true, next: 50},
			{arrive: 40, step: 41, next: 70}, // keepalive at 75, ping at 70
			{step: 70, send: true, next: 75},
			{step: 75, send: true, next: 90}, // keepalive again, pong deadline 90
		}},
		{"a heartbeat response disarms the keepalive", []op{
			{arrive: 10, step: 10, next: 40},
			{arrive: 12, response: true, step: 12, next: 42},
			{step: 42, send: true, next: 62},
		}},
		{"a busy reader suspends the pong deadline", []op{
			{step: 30, send: true, next: 50},
			{busy: &yes, step: 55, next: -1},
			{busy: &no, step: 60, next: 80},
			{step: 80, expire: true, next: -1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHeartbeat(&Config{PingAfter: 30 * time.Second, PongTimeout: 20 * time.Second, KeepaliveEvery: 35 * time.Second}, t0)
			for i, o := range tc.ops {
				if o.arrive > 0 {
					h.arrived(at(o.arrive), o.response)
				}
				if o.busy != nil {
					h.setBusy(*o.busy, at(o.step))
				}
				send, expire, next := h.step(at(o.step))
				want := time.Time{}
				if o.next >= 0 {
					want = at(o.next)
				}
				if send != o.send || expire != o.expire || !next.Equal(want) {
					t.Fatalf("op %d at %vs: send %v expire %v next %v; want %v %v %v",
						i, o.step, send, expire, next.Sub(t0), o.send, o.expire, want.Sub(t0))
				}
			}
		})
	}
}
