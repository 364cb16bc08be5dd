package openapi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// TestEventStreamInternalCall follows one internal call from ringing to
// hang-up through the stream, step by step: one story, told in one place.
func TestEventStreamInternalCall(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.AddExtension(pbxtest.Extension{Number: "1002"})
	var r eventRecorder
	_, s := newStream(t, srv, &r, streamConfig(&r, liveTopics...))
	if got := srv.EventTopicLists(); len(got) != 1 || !slices.Equal(got[0], []int{30008, 30011, 30012}) {
		t.Fatalf("topic lists = %v, want [[30008 30011 30012]]", got)
	}

	id, err := srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	awaitCallStates(t, &r, id, "1001:ALERT 1002:RING")
	if err := srv.AnswerCall(id); err != nil {
		t.Fatal(err)
	}
	awaitCallStates(t, &r, id, "1001:ALERT 1002:RING", "1001:ANSWERED 1002:ANSWER")
	callee := channelOf(t, &r, id, "1002")
	if !strings.HasPrefix(callee, "PJSIP/1002-") {
		t.Errorf("callee channel = %q, want PJSIP/1002-...", callee)
	}
	if err := srv.Hold(callee); err != nil {
		t.Fatal(err)
	}
	if err := srv.Unhold(callee); err != nil {
		t.Fatal(err)
	}
	if err := srv.Hangup(channelOf(t, &r, id, "1001")); err != nil {
		t.Fatal(err)
	}
	awaitCallStates(t, &r, id, "1001:ALERT 1002:RING", "1001:ANSWERED 1002:ANSWER", "1001:ANSWERED 1002:HOLD",
		"1001:ANSWERED 1002:ANSWER", "1001:BYE 1002:BYE")
	if !r.lastCall(id).Ended() {
		t.Error("the last 30011 does not say the call ended")
	}

	var cdr *openapi.NewCDR
	var statuses []string
	checkFor(t, func() error {
		events, _ := r.snapshot()
		statuses = statuses[:0]
		for _, ev := range events {
			switch d := ev.Data.(type) {
			case *openapi.NewCDR:
				cdr = d
				if strings.Contains(string(ev.Msg), "pin_code") {
					return fmt.Errorf("30012 msg keeps pin_code: %s", ev.Msg)
				}
			case *openapi.ExtensionCallStatus:
				if d.Extension == "1002" {
					statuses = append(statuses, d.Status)
				}
			}
			if ev.SN != srv.SerialNumber() {
				return fmt.Errorf("sn %q, want the PBX's serial %q", ev.SN, srv.SerialNumber())
			}
		}
		if cdr == nil || !slices.Equal(statuses, []string{"Ringing", "Busy", "Idle"}) {
			return fmt.Errorf("cdr %+v, 1002's 30008 statuses %v, want a CDR and Ringing, Busy, Idle", cdr, statuses)
		}
		return nil
	})
	if cdr.CallID != id || cdr.CallFrom != "1001" || cdr.CallTo != "1002" || cdr.Status != "ANSWERED" || cdr.CallType() != "internal" || cdr.SrcTrunkName != "" {
		t.Errorf("CDR = %+v", cdr)
	}
	// The end stored both extensions' records, as the Linkus side reads them.
	if a, b := srv.CDRs("1001"), srv.CDRs("1002"); len(a) != 1 || a[0].Status != 3 || len(b) != 1 || b[0].Status != 1 {
		t.Errorf("CDRs 1001 %+v, 1002 %+v, want one outgoing and one incoming", a, b)
	}
	checkFor(t, func() error {
		if st := s.Stats(); st.Heartbeats == 0 || st.Pongs == 0 || srv.EventHeartbeats() == 0 {
			return fmt.Errorf("stats %+v, PBX heartbeats %d: want heartbeats both ways", st, srv.EventHeartbeats())
		}
		return nil
	})
	if st := s.Stats(); st.Connects != 1 || len(st.Dropped) != 0 {
		t.Errorf("stats = %+v, want one connect and nothing dropped", st)
	}
}

// The simulator's call generator (Server.Call) drives the event socket
// too: a finished call rings, is answered and ends, with its CDR.
func TestEventStreamEchoesGeneratedCalls(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	var r eventRecorder
	newStream(t, srv, &r, streamConfig(&r, liveTopics...))
	if _, err := srv.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, Peer: "5550100", TalkDuration: 42}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, func() error {
		events, _ := r.snapshot()
		var states []string
		for _, ev := range events {
			switch d := ev.Data.(type) {
			case *openapi.CallState:
				states = append(states, describeMembers(d))
			case *openapi.NewCDR:
				if d.TalkDuration != 42 || d.CallFrom != "5550100" || d.CallType() != "inbound" || d.SrcTrunkName == "" {
					return fmt.Errorf("CDR %+v", d)
				}
				want := "5550100:ALERT 1001:RING | 5550100:ANSWERED 1001:ANSWER | 5550100:BYE 1001:BYE"
				if got := strings.Join(states, " | "); got != want {
					return fmt.Errorf("states %q, want %q", got, want)
				}
				return nil
			}
		}
		return errors.New("no 30012 yet")
	})
}

// The token is renewed, and the socket replaced, before the token expires;
// also with a PBX that ends the old token (and so its socket) on refresh.
func TestEventStreamRenewsTokenBeforeExpiry(t *testing.T) {
	for _, revokes := range []bool{false, true} {
		t.Run(fmt.Sprintf("refresh revokes old %v", revokes), func(t *testing.T) { testRenewal(t, revokes) })
	}
}

func testRenewal(t *testing.T, refreshRevokesOld bool) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.AddExtension(pbxtest.Extension{Number: "1002"})
	srv.SetTokenLifetime(2*time.Second, 0) // renewed at 1.6 s
	srv.SetRefreshRevokesOld(refreshRevokesOld)
	var r eventRecorder
	_, s := newStream(t, srv, &r, streamConfig(&r, liveTopics...))
	checkFor(t, func() error {
		if st := s.Stats(); st.Renewals < 2 {
			return fmt.Errorf("stats %+v, want two renewals", st)
		}
		return nil
	})
	// Events still flow on the renewed socket.
	id, err := srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	awaitCallStates(t, &r, id, "1001:ALERT 1002:RING")

	if n := srv.EventSocketsExpired(); n != 0 {
		t.Errorf("%d sockets outlived their token: the renewal came too late", n)
	}
	if n := srv.MaxLiveOpenAPITokens(); n > 2 {
		t.Errorf("%d access tokens alive at once, want at most 2", n)
	}
	if n := srv.MaxEventSockets(); n != 1 {
		t.Errorf("%d event sockets at once, want 1", n)
	}
	_, states := r.snapshot()
	renewedUps, renewalDowns := 0, 0
	for _, st := range states {
		switch {
		case st.Up && st.Renewed && st.Reconnect:
			renewedUps++
		case !st.Up && errors.Is(st.Err, openapi.ErrEventTokenRenewal):
			renewalDowns++
		}
	}
	if renewedUps < 2 || renewalDowns < 2 {
		t.Errorf("states %+v: want each renewal reported down (ErrEventTokenRenewal) and up (Renewed)", states)
	}
	if lists := srv.EventTopicLists(); len(lists) < 3 {
		t.Errorf("topic lists %v: every new socket must subscribe again", lists)
	}
}

func TestEventStreamSubscribeNeverAnswered(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.SetEventQuirks(pbxtest.EventQuirks{NeverAckSubscribe: true})
	o := newOpenAPI(t, realClockConfig(t, srv))
	var r eventRecorder
	cfg := streamConfig(&r, openapi.EventCallState)
	cfg.SubscribeTimeout = 300 * time.Millisecond
	s, err := o.NewEventStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Serve(context.Background())
	if !errors.Is(err, openapi.ErrSubscribeTimeout) {
		t.Fatalf("Serve = %v, want ErrSubscribeTimeout", err)
	}
	if d := time.Since(start); d < cfg.SubscribeTimeout || d > wait {
		t.Errorf("Serve gave up after %v, want about %v", d, cfg.SubscribeTimeout)
	}
	if len(srv.EventTopicLists()) != 1 || r.ups() != 0 {
		t.Errorf("topic lists %v, ups %d: want the list sent once and never up", srv.EventTopicLists(), r.ups())
	}

	// Run keeps trying, and comes up once the PBX answers.
	runStream(t, s)
	checkFor(t, func() error {
		if n := len(srv.EventTopicLists()); n < 3 {
			return fmt.Errorf("%d topic lists, want Run to retry", n)
		}
		return nil
	})
	if r.ups() != 0 {
		t.Fatal("up without an answer")
	}
	srv.SetEventQuirks(pbxtest.EventQuirks{})
	checkFor(t, func() error {
		if r.ups() == 0 {
			return errors.New("not up after the PBX answered")
		}
		return nil
	})
}

func TestEventStreamSilentSocketIsDead(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	o := newOpenAPI(t, realClockConfig(t, srv))
	var r eventRecorder
	cfg := streamConfig(&r, openapi.EventCallState)
	cfg.PongTimeout = 300 * time.Millisecond
	s, err := o.NewEventStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.StallEventHeartbeats(true)
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, openapi.ErrEventSocketSilent) {
			t.Fatalf("Serve = %v, want ErrEventSocketSilent", err)
		}
	case <-time.After(wait):
		t.Fatal("a silent socket was never given up")
	}
	if srv.EventHeartbeats() == 0 {
		t.Error("no heartbeat reached the PBX")
	}
	_, states := r.snapshot()
	if len(states) != 2 || !states[0].Up || states[1].Up || !errors.Is(states[1].Err, openapi.ErrEventSocketSilent) {
		t.Errorf("states %+v, want up then down with ErrEventSocketSilent", states)
	}
}

func TestEventStreamReconnectsAndNeverLeaksTheToken(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	srv.AddExtension(pbxtest.Extension{Number: "1002"})
	var logs syncBuffer
	cfg := realClockConfig(t, srv)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := newOpenAPI(t, cfg)
	var r eventRecorder
	s, err := o.NewEventStream(streamConfig(&r, liveTopics...))
	if err != nil {
		t.Fatal(err)
	}
	runStream(t, s)
	checkFor(t, func() error {
		if r.ups() != 1 {
			return fmt.Errorf("%d ups", r.ups())
		}
		return nil
	})
	srv.DropEventSockets()
	checkFor(t, func() error {
		if r.ups() != 2 {
			return fmt.Errorf("%d ups, want a reconnect", r.ups())
		}
		return nil
	})
	// A PBX that refuses the token: the stream renews it and goes on.
	srv.RevokeOpenAPITokens()
	srv.DropEventSockets()
	checkFor(t, func() error {
		if r.ups() != 3 {
			return fmt.Errorf("%d ups, want one more with a new token", r.ups())
		}
		return nil
	})
	id, err := srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	awaitCallStates(t, &r, id, "1001:ALERT 1002:RING")
	_, states := r.snapshot()
	var errs []string
	for _, st := range states {
		if st.Err != nil {
			errs = append(errs, st.Err.Error())
		}
	}
	if len(errs) < 2 || !states[len(states)-1].Up || !states[len(states)-1].Reconnect {
		t.Errorf("states %+v: want the downs with their errors and a reconnect", states)
	}
	text := logs.String() + strings.Join(errs, "\n")
	if !strings.Contains(text, "event socket") {
		t.Fatalf("the test saw too little:\n%s", text)
	}
	for _, c := range srv.IssuedCredentials() {
		if strings.Contains(text, c) || strings.Contains(text, url.QueryEscape(c)) {
			t.Fatalf("credential %.6s... leaked:\n%s", c, text)
		}
	}
}

// Closing the client (which revokes the token) ends Run.
func TestEventStreamEndsWithClientClose(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	o, err := openapi.New(realClockConfig(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	var r eventRecorder
	s, err := o.NewEventStream(streamConfig(&r, openapi.EventCallState))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	checkFor(t, func() error {
		if r.ups() == 0 {
			return errors.New("not up yet")
		}
		return nil
	})
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, openapi.ErrClosed) {
			t.Errorf("Run = %v, want ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("Run outlived the client's Close")
	}
	checkFor(t, func() error {
		if n := srv.EventSockets(); n != 0 {
			return fmt.Errorf("%d event sockets still open", n)
		}
		return nil
	})
}
