package openapi_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// livePBX is a simulator with extensions 1001..1003 and a stream of its
// live-call events.
func livePBX(t *testing.T) (*pbxtest.Server, *openapi.Client, *eventRecorder) {
	srv := newPBX(t, pbxtest.Options{})
	for _, n := range []string{"1001", "1002", "1003"} {
		srv.AddExtension(pbxtest.Extension{Number: n})
	}
	r := &eventRecorder{}
	o, _ := newStream(t, srv, r, streamConfig(r, liveTopics...))
	return srv, o, r
}

func TestCallControlRoundTrip(t *testing.T) {
	srv, o, r := livePBX(t)
	ctx := context.Background()
	id, err := o.Dial(ctx, "1001", "1002", true)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	// Click-to-call rings the caller, who answers at once (auto_answer),
	// and then the callee.
	awaitCallStates(t, r, id, "1001:RING", "1001:ALERT 1002:RING")
	calls, err := o.QueryCalls(ctx, openapi.CallQuery{CallID: id})
	if err != nil {
		t.Fatalf("QueryCalls: %v", err)
	}
	if len(calls) != 1 || calls[0].CallID != id || describeMembers(&calls[0]) != "1001:ALERT 1002:RING" {
		t.Fatalf("QueryCalls = %+v, want the dialled call", calls)
	}
	for _, q := range []openapi.CallQuery{{Extension: "1002"}, {Type: "internal"}} {
		if calls, err := o.QueryCalls(ctx, q); err != nil || len(calls) != 1 || calls[0].CallID != id {
			t.Errorf("QueryCalls(%+v) = %+v, %v", q, calls, err)
		}
	}
	if calls, err := o.QueryCalls(ctx, openapi.CallQuery{Type: "inbound"}); err != nil || len(calls) != 0 {
		t.Errorf("QueryCalls(inbound) = %+v, %v, want none", calls, err)
	}

	if err := srv.AnswerCall(id); err != nil {
		t.Fatal(err)
	}
	caller := channelOf(t, r, id, "1001")
	callee := channelOf(t, r, id, "1002")
	if err := o.Hold(ctx, callee); err != nil {
		t.Fatalf("Hold: %v", err)
	}
	if err := o.Unhold(ctx, callee); err != nil {
		t.Fatalf("Unhold: %v", err)
	}
	if err := o.Hangup(ctx, caller); err != nil {
		t.Fatalf("Hangup: %v", err)
	}
	awaitCallStates(t, r, id, "1001:RING", "1001:ALERT 1002:RING", "1001:ANSWERED 1002:ANSWER",
		"1001:ANSWERED 1002:HOLD", "1001:ANSWERED 1002:ANSWER", "1001:BYE 1002:BYE")
	if calls, err := o.QueryCalls(ctx, openapi.CallQuery{CallID: id}); err != nil || len(calls) != 0 {
		t.Errorf("QueryCalls after the end = %+v, %v, want none", calls, err)
	}
}

func TestCallControlTransfers(t *testing.T) {
	srv, o, r := livePBX(t)
	ctx := context.Background()
	talking := func() (id, a, b string) {
		t.Helper()
		id, err := srv.StartCall("1001", "1002")
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AnswerCall(id); err != nil {
			t.Fatal(err)
		}
		awaitCallStates(t, r, id, "1001:ALERT 1002:RING", "1001:ANSWERED 1002:ANSWER")
		return id, channelOf(t, r, id, "1001"), channelOf(t, r, id, "1002")
	}

	// Blind: A (1001) goes to 1003; B (1002) leaves.
	id, a, _ := talking()
	if err := o.Transfer(ctx, openapi.TransferRequest{Type: openapi.TransferBlind, ChannelID: a, Number: "1003", DialPermission: "1002"}); err != nil {
		t.Fatalf("blind Transfer: %v", err)
	}
	if err := srv.AnswerCall(id); err != nil {
		t.Fatal(err)
	}
	awaitCallStates(t, r, id, "1001:ALERT 1002:RING", "1001:ANSWERED 1002:ANSWER", "1001:ALERT 1002:BYE 1003:RING", "1001:ANSWERED 1003:ANSWER")
	if err := srv.EndCall(id); err != nil {
		t.Fatal(err)
	}

	// Attended: B (1002) consults 1003 while A (1001) holds, then completes.
	id, _, b := talking()
	if err := o.Transfer(ctx, openapi.TransferRequest{Type: openapi.TransferAttended, ChannelID: b, Number: "1003", DialPermission: "1002"}); err != nil {
		t.Fatalf("attended Transfer: %v", err)
	}
	if err := srv.AnswerCall(id); err != nil {
		t.Fatal(err)
	}
	if err := o.Transfer(ctx, openapi.TransferRequest{Type: openapi.TransferAttended, ChannelID: b, AttendedOperate: openapi.AttendedComplete}); err != nil {
		t.Fatalf("attended complete: %v", err)
	}
	awaitCallStates(t, r, id, "1001:ALERT 1002:RING", "1001:ANSWERED 1002:ANSWER", "1001:HOLD 1002:ALERT 1003:RING",
		"1001:HOLD 1002:ANSWERED 1003:ANSWER", "1001:ANSWERED 1002:BYE 1003:ANSWER")
}

func TestCallControlErrors(t *testing.T) {
	srv, o, r := livePBX(t)
	ctx := context.Background()
	id, err := srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	awaitCallStates(t, r, id, "1001:ALERT 1002:RING")
	ringing := channelOf(t, r, id, "1002")
	for _, tc := range []struct {
		name   string
		call   func() error
		is     error
		status int
	}{
		{"unknown channel", func() error { return o.Hangup(ctx, "PJSIP/1009-00000001") }, openapi.ErrCallNotFound, http.StatusNotFound},
		{"unknown caller", func() error { _, err := o.Dial(ctx, "1009", "1002", false); return err }, openapi.ErrCallNotFound, http.StatusNotFound},
		{"hold a ringing member", func() error { return o.Hold(ctx, ringing) }, openapi.ErrCallRefused, http.StatusBadRequest},
		{"unhold a member not held", func() error { return o.Unhold(ctx, ringing) }, openapi.ErrCallRefused, http.StatusBadRequest},
		{"dial permission not an extension", func() error {
			return o.Transfer(ctx, openapi.TransferRequest{Type: openapi.TransferBlind, ChannelID: ringing, Number: "1003", DialPermission: "5550100"})
		}, openapi.ErrCallRefused, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var oe *openapi.Error
			if !errors.Is(err, tc.is) || !errors.As(err, &oe) || openapi.CallControlStatus(err) != tc.status {
				t.Errorf("err = %v (status %d), want an *Error wrapping %v (status %d)", err, openapi.CallControlStatus(err), tc.is, tc.status)
			}
		})
	}

	srv.FailEndpoint("/openapi/v1.0/call/dial", -2, "INTERNAL SERVER ERROR")
	if _, err := o.Dial(ctx, "1001", "1002", false); !errors.Is(err, openapi.ErrCallUnavailable) || openapi.CallControlStatus(err) != http.StatusServiceUnavailable {
		t.Errorf("Dial with the PBX failing = %v, want ErrCallUnavailable (503)", err)
	}
	srv.FailEndpoint("/openapi/v1.0/call/dial", 0, "")

	// A refused token is renewed and the action sent once more; any other
	// refusal is sent once.
	dials := srv.Requests("/openapi/v1.0/call/dial")
	srv.RevokeOpenAPITokens()
	if _, err := o.Dial(ctx, "1001", "1003", false); err != nil {
		t.Fatalf("Dial with a revoked token: %v", err)
	}
	if _, err := o.Dial(ctx, "1009", "1003", false); !errors.Is(err, openapi.ErrCallNotFound) {
		t.Fatal(err)
	}
	if n := srv.Requests("/openapi/v1.0/call/dial") - dials; n != 3 {
		t.Errorf("%d dial requests, want 3: a retry after the token refusal, none after the other", n)
	}

	srv.SlowEndpoint("/openapi/v1.0/call/hold", time.Second)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	var te *pbx.TransportError
	if err := o.Hold(short, ringing); !errors.As(err, &te) || openapi.CallControlStatus(err) != http.StatusBadGateway {
		t.Errorf("Hold timing out = %v (status %d), want a *pbx.TransportError (502)", err, openapi.CallControlStatus(err))
	}
}

// Parameters are checked before anything is sent.
func TestCallControlValidates(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	o := newOpenAPI(t, realClockConfig(t, srv))
	ctx := context.Background()
	for i, call := range []func() error{
		func() error { _, err := o.Dial(ctx, "", "1002", false); return err },
		func() error { _, err := o.Dial(ctx, "1001", "10 02", false); return err },
		func() error { _, err := o.Dial(ctx, "1001\n", "1002", false); return err },
		func() error { return o.Hangup(ctx, "") },
		func() error { return o.Hold(ctx, `PJSIP/1001"-1`) },
		func() error { return o.Unhold(ctx, string(make([]byte, 200))) },
		func() error {
			return o.Transfer(ctx, openapi.TransferRequest{Type: "warm", ChannelID: "PJSIP/1-1", Number: "1", DialPermission: "1"})
		},
		func() error {
			return o.Transfer(ctx, openapi.TransferRequest{Type: openapi.TransferBlind, ChannelID: "PJSIP/1-1", Number: "1003"})
		},
		func() error {
			return o.Transfer(ctx, openapi.TransferRequest{Type: openapi.TransferBlind, ChannelID: "PJSIP/1-1", Number: "1", DialPermission: "1", AttendedOperate: openapi.AttendedAbort})
		},
		func() error {
			return o.Transfer(ctx, openapi.TransferRequest{Type: openapi.TransferAttended, ChannelID: "PJSIP/1-1", AttendedOperate: "merge"})
		},
		func() error { _, err := o.QueryCalls(ctx, openapi.CallQuery{}); return err },
		func() error {
			_, err := o.QueryCalls(ctx, openapi.CallQuery{CallID: "1.1", Extension: "1001"})
			return err
		},
		func() error { _, err := o.QueryCalls(ctx, openapi.CallQuery{Type: "Internal"}); return err },
	} {
		if err := call(); !errors.Is(err, openapi.ErrInvalidCallRequest) || openapi.CallControlStatus(err) != http.StatusBadRequest {
			t.Errorf("case %d: err = %v, want ErrInvalidCallRequest (400)", i, err)
		}
	}
	if n := len(srv.RequestCounts()); n != 0 {
		t.Errorf("requests were sent: %v", srv.RequestCounts())
	}
}
