package livecall_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// controlPBX is a simulator with 1001..1003, a tracker fed by its event
// socket, and a controller over its OpenAPI (with the tracker if
// withTracker).
func controlPBX(t *testing.T, withTracker bool) (*pbxtest.Server, *recorder, *livecall.Controller) {
	t.Helper()
	r := &recorder{tr: newTracker(t, livecall.Config{})}
	srv, o := livePBX(t, r, "1001", "1002", "1003")
	cfg := livecall.ControllerConfig{API: o, Served: func(ext string) bool { return ext != "1009" }}
	if withTracker {
		cfg.Tracker = r.tr
	}
	c, err := livecall.NewController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, r, c
}

// do runs a request and returns its reply, failing the test on an error.
func do(t *testing.T, c *livecall.Controller, op livecall.Op, ext, body string) any {
	t.Helper()
	reply, status, e := c.Handle(context.Background(), op, ext, []byte(body))
	if e != nil || status != 200 {
		t.Fatalf("%s %s %s: %d %v", op, ext, body, status, e)
	}
	b, _ := json.Marshal(reply)
	if err := schema.Validate(op.ReplyType(), b); err != nil {
		t.Fatalf("%s reply %s: %v", op, b, err)
	}
	return reply
}

// fails runs a request that must fail with code, its message holding
// want.
func fails(t *testing.T, c *livecall.Controller, op livecall.Op, ext, body string, code int, want string) *livecall.Error {
	t.Helper()
	reply, status, e := c.Handle(context.Background(), op, ext, []byte(body))
	if e == nil || status != code || e.Code != code || reply != nil || !strings.Contains(e.Message, want) {
		t.Fatalf("%s %s %s: %v %d %+v, want %d about %q", op, ext, body, reply, status, e, code, want)
	}
	b, _ := json.Marshal(e.Reply())
	if err := schema.Validate(schema.TypeError, b); err != nil {
		t.Fatalf("error reply %s: %v", b, err)
	}
	return e
}

// TestCallControlRoundTrip: click-to-call, hold and resume by call_id and
// by channel, list, a blind transfer, and a hang-up, each seen in the
// tracker's events; with the tracker the channel is found without
// call/query.
func TestCallControlRoundTrip(t *testing.T) {
	srv, r, c := controlPBX(t, true)
	id := do(t, c, livecall.OpDial, "1001", `{"callee":"1002","auto_answer":true}`).(schema.CallDialResult).CallID
	r.awaitEvents(t, "call.", "1001:ringing<#1", "1002:ringing<#1")
	if err := srv.AnswerCall(id); err != nil {
		t.Fatal(err)
	}
	r.awaitEvents(t, "call.", "1001:ringing<#1", "1002:ringing<#1", "1001:answered<ringing#2", "1002:answered<ringing#2")
	queries := srv.Requests("/openapi/v1.0/call/query")

	res := do(t, c, livecall.OpHold, "1001", `{"call_id":"`+id+`"}`).(schema.CallActionResult)
	if res.CallID != id || res.ChannelID != channel(t, r, "1001") {
		t.Errorf("hold = %+v, want 1001's channel in %s", res, id)
	}
	r.awaitEvents(t, "call.held", "1001:held<answered#3")
	do(t, c, livecall.OpUnhold, "1001", `{"channel_id":"`+res.ChannelID+`"}`)
	r.awaitEvents(t, "call.resumed", "1001:resumed<held#4")
	if n := srv.Requests("/openapi/v1.0/call/query"); n != queries {
		t.Errorf("%d call/query with the tracker knowing the call", n-queries)
	}

	list := do(t, c, livecall.OpList, "1002", ``).(schema.CallListResult)
	if len(list.Calls) != 1 || list.Calls[0].CallID != id || list.Calls[0].Direction != schema.DirectionInternal || len(list.Calls[0].Members) != 2 {
		t.Errorf("list = %+v", list)
	}
	if l := do(t, c, livecall.OpList, "1003", `{}`).(schema.CallListResult); len(l.Calls) != 0 {
		t.Errorf("1003's list = %+v, want none", l)
	}

	// 1002 moves 1001 to 1003: the PBX gets 1001's channel.
	moved := do(t, c, livecall.OpTransfer, "1002", `{"call_id":"`+id+`","type":"blind","number":"1003"}`).(schema.CallActionResult)
	if moved.ChannelID != res.ChannelID {
		t.Errorf("blind transfer acted on %s, want 1001's %s", moved.ChannelID, res.ChannelID)
	}
	r.awaitEvents(t, "call.ringing", "1001:ringing<#1", "1002:ringing<#1", "1001:ringing<answered#5", "1003:ringing<#1")
	do(t, c, livecall.OpHangup, "1003", `{"call_id":"`+id+`"}`)
	r.awaitEvents(t, "call.ended", "1002:ended<answered#3", "1001:ended<ringing#6", "1003:ended<ringing#2")
	fails(t, c, livecall.OpHangup, "1003", `{"call_id":"`+id+`"}`, 404, "no live channel")
}

// TestCallControlWithoutTracker: a replica without the event stream finds
// channels with call/query.
func TestCallControlWithoutTracker(t *testing.T) {
	srv, r, c := controlPBX(t, false)
	id, err := srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AnswerCall(id); err != nil {
		t.Fatal(err)
	}
	r.awaitEvents(t, "call.answered", "1001:answered<ringing#2", "1002:answered<ringing#2")
	queries := srv.Requests("/openapi/v1.0/call/query")
	do(t, c, livecall.OpHold, "1002", `{"call_id":"`+id+`"}`)
	do(t, c, livecall.OpUnhold, "1002", `{"channel_id":"`+channel(t, r, "1002")+`"}`)
	if n := srv.Requests("/openapi/v1.0/call/query") - queries; n != 2 {
		t.Errorf("%d call/query, want 2 (one per request)", n)
	}
	r.awaitEvents(t, "call.resumed", "1002:resumed<held#4")
	// The attended transfer: started, then completed by a second request.
	do(t, c, livecall.OpTransfer, "1002", `{"call_id":"`+id+`","type":"attended","number":"1003"}`)
	r.awaitEvents(t, "call.held", "1002:held<answered#3", "1001:held<answered#3")
	do(t, c, livecall.OpTransfer, "1002", `{"call_id":"`+id+`","type":"attended","attended_operate":"complete"}`)
	r.awaitEvents(t, "call.ended", "1002:ended<ringing#6")
}

// TestCallControlRefusals: what the bridge refuses itself (another
// extension's channel, a call it is not in, a blind transfer with two
// other parties) and the PBX's errors, mapped by openapi.CallControlStatus.
func TestCallControlRefusals(t *testing.T) {
	srv, r, c := controlPBX(t, true)
	id, err := srv.StartCall("1001", "1002")
	if err != nil {
		t.Fatal(err)
	}
	r.awaitEvents(t, "call.ringing", "1001:ringing<#1", "1002:ringing<#1")
	callee := channel(t, r, "1002")

	fails(t, c, livecall.OpHangup, "1001", `{"channel_id":"`+callee+`"}`, 404, "no live channel of extension")
	fails(t, c, livecall.OpHold, "1003", `{"call_id":"`+id+`"}`, 404, "no live channel in call")
	fails(t, c, livecall.OpHold, "1001", `{"call_id":"1.999"}`, 404, "no live channel in call")
	fails(t, c, livecall.OpDial, "1009", `{"callee":"1002"}`, 404, "not served")
	// The PBX refuses to hold a ringing member (70084 ACTION FORBIDDEN).
	e := fails(t, c, livecall.OpHold, "1002", `{"call_id":"`+id+`"}`, 400, "refused")
	if e.PBXErrCode != 70084 || e.PBXErrMsg != "ACTION FORBIDDEN" {
		t.Errorf("error %+v: want the PBX's errcode and errmsg", e)
	}

	// Three parties: whom to move is not for the bridge to guess.
	if err := srv.AnswerCall(id); err != nil {
		t.Fatal(err)
	}
	do(t, c, livecall.OpTransfer, "1002", `{"call_id":"`+id+`","type":"attended","number":"1003"}`)
	r.awaitEvents(t, "call.ringing", "1001:ringing<#1", "1002:ringing<#1", "1002:ringing<answered#3", "1003:ringing<#1")
	fails(t, c, livecall.OpTransfer, "1002", `{"call_id":"`+id+`","type":"blind","number":"1001"}`, 400, "2 other parties")

	for _, f := range []struct {
		errcode int
		errmsg  string
		code    int
	}{
		{60001, "DATA NOT FOUND", 404},
		{60002, "MAX LIMITATION EXCEEDED", 503},
		{40002, "PARAMETER ERROR", 400},
	} {
		srv.FailEndpoint("/openapi/v1.0/call/dial", f.errcode, f.errmsg)
		e := fails(t, c, livecall.OpDial, "1001", `{"callee":"1003"}`, f.code, f.errmsg)
		if e.PBXErrCode != f.errcode {
			t.Errorf("errcode %d: error %+v", f.errcode, e)
		}
	}
	srv.FailEndpoint("/openapi/v1.0/call/dial", 0, "")
	srv.FailEndpoint("/openapi/v1.0/call/query", 60002, "MAX LIMITATION EXCEEDED")
	fails(t, c, livecall.OpList, "1001", ``, 503, "cannot take")
	fails(t, c, livecall.OpHold, "1001", `{"call_id":"1.998"}`, 503, "cannot take")

	srv.Close()
	e = fails(t, c, livecall.OpDial, "1001", `{"callee":"1003"}`, 502, "could not be reached")
	if e.PBXErrCode != 0 || strings.Contains(strings.ReplaceAll(e.Message, "access_token=REDACTED", ""), "access_token") {
		t.Errorf("transport error %+v", e)
	}
}

// TestCallControlNoToken: a client whose credentials the PBX refuses gets
// 503, without a call control request.
func TestCallControlNoToken(t *testing.T) {
	srv, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.AddExtension(pbxtest.Extension{Number: "1001"})
	o, err := openapi.New(openapi.Config{URL: srv.URL(), AccessID: "wrong", AccessKey: "wrong", RootCAs: srv.CertPool(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	c, err := livecall.NewController(livecall.ControllerConfig{API: o, Served: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	e := fails(t, c, livecall.OpDial, "1001", `{"callee":"1002"}`, 503, "cannot take")
	if n := srv.Requests("/openapi/v1.0/call/dial"); n != 0 {
		t.Errorf("%d call/dial without a token", n)
	}
	if strings.Contains(fmt.Sprint(e), "wrong") {
		t.Errorf("the credentials are in the error: %v", e)
	}
}
