package livecall_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// noPBX is a CallAPI that fails every call: the requests of the table
// below must be refused before reaching it.
type noPBX struct{ t *testing.T }

func (n noPBX) fail() error {
	n.t.Error("a request reached the PBX")
	return openapi.ErrCallUnavailable
}
func (n noPBX) Dial(context.Context, string, string, bool) (string, error) { return "", n.fail() }
func (n noPBX) Hangup(context.Context, string) error                       { return n.fail() }
func (n noPBX) Hold(context.Context, string) error                         { return n.fail() }
func (n noPBX) Unhold(context.Context, string) error                       { return n.fail() }
func (n noPBX) Transfer(context.Context, openapi.TransferRequest) error    { return n.fail() }
func (n noPBX) QueryCalls(context.Context, openapi.CallQuery) ([]openapi.CallState, error) {
	return nil, n.fail()
}

// TestRequestValidation: every body the parser takes, the schema takes,
// and every one it refuses (400, before the PBX), the schema refuses: the
// rules live in the parser, the schema documents them.
func TestRequestValidation(t *testing.T) {
	cases := []struct {
		op    livecall.Op
		body  string
		valid bool
		why   string // in the 400's message
	}{
		{livecall.OpDial, `{"callee":"1002"}`, true, ""},
		{livecall.OpDial, `{"callee":"+4915112345678","auto_answer":true}`, true, ""},
		{livecall.OpDial, `{"callee":"*97#","auto_answer":false}`, true, ""},
		{livecall.OpDial, ``, false, "callee"},
		{livecall.OpDial, `{}`, false, "callee"},
		{livecall.OpDial, `{"callee":""}`, false, "callee"},
		{livecall.OpDial, `{"callee":"alice"}`, false, "not a number"},
		{livecall.OpDial, `{"callee":"123456789012345678901234567890123"}`, false, "not a number"},
		{livecall.OpDial, `{"callee":1002}`, false, "must be a string"},
		{livecall.OpDial, `{"callee":null}`, false, "must be a string"},
		{livecall.OpDial, `{"callee":"1002","auto_answer":"yes"}`, false, "true or false"},
		{livecall.OpDial, `{"callee":"1002","auto_answer":null}`, false, "true or false"},
		{livecall.OpDial, `{"callee":"1002","caller":"1003"}`, false, "unknown member"},
		{livecall.OpDial, `{"Callee":"1002"}`, false, "unknown member"},
		{livecall.OpDial, `{"callee":"1002"} {}`, false, "trailing"},
		{livecall.OpDial, `["1002"]`, false, "not a JSON object"},
		{livecall.OpDial, `{"callee":"10\u00002"}`, false, "not a number"},
		{livecall.OpHangup, `{"call_id":"1651057476.362"}`, true, ""},
		{livecall.OpHold, `{"channel_id":"PJSIP/1001-00000023"}`, true, ""},
		{livecall.OpUnhold, `{"channel_id":"SIP/trunk@host:5060;x-1"}`, true, ""},
		{livecall.OpHangup, `{}`, false, "exactly one"},
		{livecall.OpHangup, ``, false, "exactly one"},
		{livecall.OpHold, `{"call_id":"1.2","channel_id":"PJSIP/1001-1"}`, false, "exactly one"},
		{livecall.OpHold, `{"call_id":""}`, false, "not a call id"},
		{livecall.OpHold, `{"call_id":"1 2"}`, false, "not a call id"},
		{livecall.OpHold, `{"call_id":"` + strings.Repeat("1", 65) + `"}`, false, "not a call id"},
		{livecall.OpUnhold, `{"channel_id":"PJSIP/1001 00000023"}`, false, "not a channel id"},
		{livecall.OpUnhold, `{"channel_id":"PJSIP/1001-0\n"}`, false, "not a channel id"},
		{livecall.OpHangup, `{"call_id":"1.2","reason":"busy"}`, false, "unknown member"},
		{livecall.OpTransfer, `{"call_id":"1.2","type":"blind","number":"1003"}`, true, ""},
		{livecall.OpTransfer, `{"channel_id":"PJSIP/1001-1","type":"attended","number":"1003"}`, true, ""},
		{livecall.OpTransfer, `{"call_id":"1.2","type":"attended","attended_operate":"complete"}`, true, ""},
		{livecall.OpTransfer, `{"call_id":"1.2","type":"attended","attended_operate":"swap"}`, true, ""},
		{livecall.OpTransfer, `{"call_id":"1.2","number":"1003"}`, false, "neither blind nor attended"},
		{livecall.OpTransfer, `{"call_id":"1.2","type":"BLIND","number":"1003"}`, false, "neither blind nor attended"},
		{livecall.OpTransfer, `{"call_id":"1.2","type":"blind"}`, false, "number"},
		{livecall.OpTransfer, `{"call_id":"1.2","type":"blind","number":"x"}`, false, "number"},
		{livecall.OpTransfer, `{"type":"blind","number":"1003"}`, false, "exactly one"},
		{livecall.OpTransfer, `{"call_id":"1.2","type":"blind","attended_operate":"complete"}`, false, "for an attended"},
		{livecall.OpTransfer, `{"call_id":"1.2","type":"attended","attended_operate":"complete","number":"1003"}`, false, "no number"},
		{livecall.OpTransfer, `{"call_id":"1.2","type":"attended","attended_operate":"merge"}`, false, "none of"},
		{livecall.OpTransfer, `{"call_id":"1.2","type":"blind","number":"1003","dial_permission":"1009"}`, false, "unknown member"},
		{livecall.OpList, ``, true, ""},
		{livecall.OpList, `{}`, true, ""},
		{livecall.OpList, `{"extension":"1002"}`, false, "unknown member"},
		{livecall.OpList, `"x"`, false, "not a JSON object"},
		{livecall.OpDial, `{"callee":"` + strings.Repeat("1", 70000) + `"}`, false, "more than"},
	}
	c, err := livecall.NewController(livecall.ControllerConfig{API: noPBX{t}, Served: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		r, e := c.Prepare(tc.op, "1001", []byte(tc.body))
		switch {
		case tc.valid && (e != nil || r == nil):
			t.Errorf("%s %.80s: refused: %v", tc.op, tc.body, e)
		case !tc.valid && (e == nil || e.Code != 400 || e.Name() != schema.ErrorBadRequest || !strings.Contains(e.Message, tc.why)):
			t.Errorf("%s %.80s: got %+v, want a 400 about %q", tc.op, tc.body, e, tc.why)
		}
		if typ := tc.op.RequestType(); typ != "" && len(tc.body) < 1000 {
			if err := schema.Validate(typ, []byte(tc.body)); (err == nil) != tc.valid {
				t.Errorf("%s %s: the schema says %v, the parser valid=%v", tc.op, tc.body, err, tc.valid)
			}
		}
	}
}

// TestNotServedIs404: an extension the bridge does not serve gets 404,
// whatever its body, and the PBX is never asked.
func TestNotServedIs404(t *testing.T) {
	c, err := livecall.NewController(livecall.ControllerConfig{API: noPBX{t}, Served: func(ext string) bool { return ext == "1001" }})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range livecall.Ops() {
		for _, body := range []string{``, `{"callee":"1002"}`, `{"call_id":"1.2"}`, `garbage`} {
			reply, status, e := c.Handle(context.Background(), op, "1002", []byte(body))
			if status != 404 || e == nil || e.Name() != schema.ErrorNotFound || reply != nil || !strings.Contains(e.Message, "not served") {
				t.Errorf("%s %q for 1002: %v %d %+v, want 404", op, body, reply, status, e)
			}
		}
	}
	if _, e := c.Prepare("call.park", "1001", nil); e == nil || e.Code != 404 {
		t.Errorf("an unknown op: %+v, want 404", e)
	}
	if _, err := livecall.NewController(livecall.ControllerConfig{API: noPBX{t}}); err == nil {
		t.Error("a controller without Served was made")
	}
}

func TestOpTypes(t *testing.T) {
	for _, op := range livecall.Ops() {
		if rt := op.ReplyType(); !strings.HasPrefix(rt, "com.yeastar.pbx.call.") || !strings.HasSuffix(rt, ".v1") {
			t.Errorf("%s: reply type %q", op, rt)
		}
		if _, ok := schema.SchemaFile(op.ReplyType()); !ok {
			t.Errorf("%s: no schema %s", op, op.ReplyType())
		}
		if rt := op.RequestType(); rt != "" {
			if _, ok := schema.SchemaFile(rt); !ok {
				t.Errorf("%s: no schema %s", op, rt)
			}
		}
		if got := op.Subject("pbx"); got != "pbx.*."+string(op) {
			t.Errorf("Subject = %s", got)
		}
	}
}
