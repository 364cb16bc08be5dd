package openapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// liveTopics is what the live-call tests subscribe to.
var liveTopics = []openapi.EventType{openapi.EventExtensionCallStatus, openapi.EventCallState, openapi.EventNewCDR}

// eventRecorder collects what an event stream delivers.
type eventRecorder struct {
	mu     sync.Mutex
	events []*openapi.Event
	states []openapi.EventStreamState
	lost   int
	drops  map[pbx.DropReason]int
	gate   chan struct{} // if set, OnEvent waits on it
}

func (r *eventRecorder) onEvent(ev *openapi.Event) {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *eventRecorder) onState(st openapi.EventStreamState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, st)
}

func (r *eventRecorder) onLost(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lost += n
}

func (r *eventRecorder) onDrop(reason pbx.DropReason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drops[reason]++
}

func (r *eventRecorder) snapshot() ([]*openapi.Event, []openapi.EventStreamState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*openapi.Event(nil), r.events...), append([]openapi.EventStreamState(nil), r.states...)
}

func (r *eventRecorder) dropped(reason pbx.DropReason) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drops[reason]
}

// ups counts the up states seen.
func (r *eventRecorder) ups() int {
	_, states := r.snapshot()
	n := 0
	for _, st := range states {
		if st.Up {
			n++
		}
	}
	return n
}

// callStates returns the 30011 member lists of the call, each as
// "number:STATUS ..." in the PBX's order.
func (r *eventRecorder) callStates(callID string) []string {
	events, _ := r.snapshot()
	var out []string
	for _, ev := range events {
		if cs, ok := ev.Data.(*openapi.CallState); ok && cs.CallID == callID {
			out = append(out, describeMembers(cs))
		}
	}
	return out
}

func describeMembers(cs *openapi.CallState) string {
	var parts []string
	for _, m := range cs.Members {
		party := m.Number // the extension, or the trunk leg's external party
		switch m.Kind {
		case openapi.MemberInbound:
			party = m.From
		case openapi.MemberOutbound:
			party = m.To
		}
		parts = append(parts, fmt.Sprintf("%s:%s", party, m.Status))
	}
	return strings.Join(parts, " ")
}

// lastCall returns the latest 30011 of the call.
func (r *eventRecorder) lastCall(callID string) *openapi.CallState {
	events, _ := r.snapshot()
	for i := len(events) - 1; i >= 0; i-- {
		if cs, ok := events[i].Data.(*openapi.CallState); ok && cs.CallID == callID {
			return cs
		}
	}
	return nil
}

// streamConfig is a stream of the topics with test timings.
func streamConfig(r *eventRecorder, topics ...openapi.EventType) openapi.EventStreamConfig {
	r.drops = map[pbx.DropReason]int{}
	return openapi.EventStreamConfig{
		Topics:           topics,
		OnEvent:          r.onEvent,
		OnState:          r.onState,
		OnLost:           r.onLost,
		OnDrop:           r.onDrop,
		SubscribeTimeout: 2 * time.Second,
		HeartbeatEvery:   50 * time.Millisecond,
		PongTimeout:      2 * time.Second,
		ReconnectMin:     20 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
	}
}

// runStream runs the stream until the test ends, and checks that Run
// returns nil then.
func runStream(t *testing.T, s *openapi.EventStream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v after its context ended, want nil", err)
			}
		case <-time.After(wait):
			t.Errorf("Run did not return within %v of its context's end", wait)
		}
	})
}

// newStream makes an OpenAPI client of srv (real clock) and a stream of it
// running until the test ends, and awaits its first subscription.
func newStream(t *testing.T, srv *pbxtest.Server, r *eventRecorder, cfg openapi.EventStreamConfig) (*openapi.Client, *openapi.EventStream) {
	t.Helper()
	o := newOpenAPI(t, realClockConfig(t, srv))
	s, err := o.NewEventStream(cfg)
	if err != nil {
		t.Fatalf("NewEventStream: %v", err)
	}
	runStream(t, s)
	checkFor(t, func() error {
		if r.ups() == 0 {
			return errors.New("no subscription answered yet")
		}
		return nil
	})
	return o, s
}

// realClockConfig is openAPIConfig on the wall clock, which the simulator
// expires tokens by.
func realClockConfig(t *testing.T, srv *pbxtest.Server) openapi.Config {
	cfg := openAPIConfig(t, srv, newFakeClock())
	cfg.Now = nil
	return cfg
}

// checkFor polls cond until it returns nil, failing the test with its last
// error after the deadline.
func checkFor(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v: %v", wait, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// awaitCallStates waits until the call's 30011 member lists are want.
func awaitCallStates(t *testing.T, r *eventRecorder, callID string, want ...string) {
	t.Helper()
	checkFor(t, func() error {
		got := r.callStates(callID)
		if strings.Join(got, " | ") != strings.Join(want, " | ") {
			return fmt.Errorf("call %s states:\n got %q\nwant %q", callID, got, want)
		}
		return nil
	})
}

// channelOf returns the channel of the extension's member in the call's
// latest 30011.
func channelOf(t *testing.T, r *eventRecorder, callID, ext string) string {
	t.Helper()
	if cs := r.lastCall(callID); cs != nil {
		for _, m := range cs.Members {
			if m.Number == ext {
				return m.ChannelID
			}
		}
	}
	t.Fatalf("no member %s in call %s", ext, callID)
	return ""
}
