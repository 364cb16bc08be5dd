package pbx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

func TestSessionLifecycle(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001", Name: "Alice"})
	before := time.Now()
	s := open(t, srv, fastConfig(t, srv, ext))

	// The simulator's Date header is to the second.
	if lt := s.LoginTime(); lt.Before(before.Truncate(time.Second)) || lt.After(time.Now()) {
		t.Errorf("LoginTime = %v, want between %v and now", lt, before)
	}
	if got := s.Extension(); got != (pbx.Extension{ID: ext.ID, Number: "1001", Name: "Alice"}) {
		t.Errorf("Extension = %+v", got)
	}
	if p := s.Product(); p.Version != "37.12.0.10" || p.PlanMode() != "en" {
		t.Errorf("Product = %+v", p)
	}
	if s.Host() != strings.TrimPrefix(srv.URL(), "https://") {
		t.Errorf("Host = %q, want the host of %s", s.Host(), srv.URL())
	}
	want := [][]int{{10000, 20007, 20008, 20010, 20015, 20047, 20048, 20049, 20053, 20065, 20066, 20082, 20104, 20153, 20154}}
	if got := srv.TopicLists("1001"); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("topic lists = %v, want %v", got, want)
	}
	if !slices.Equal(s.Topics(), want[0]) {
		t.Errorf("Topics = %v", s.Topics())
	}
	if s.Err() != nil {
		t.Errorf("Err while running = %v", s.Err())
	}

	cdr, err := srv.Call("1001", pbxtest.Call{Kind: pbxtest.Incoming, Peer: "2000", TalkDuration: 42})
	if err != nil {
		t.Fatal(err)
	}
	changed := awaitEvent(t, s, func(*pbx.CDRChanged) bool { return true })
	if changed.ExtNum != "1001" || changed.PersonalCDR.Timestamp != cdr.Timestamp || changed.PersonalCDR.TalkDuration != 42 {
		t.Errorf("CDRChanged = %+v, want ext 1001 at %d", changed, cdr.Timestamp)
	}
	res, err := s.CDRQuery(context.Background(), pbx.CDRQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 || res.Records[0].ID != cdr.ID || res.Records[0].UniqueID != cdr.UniqueID {
		t.Errorf("CDRQuery = %+v, want record %d", res, cdr.ID)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done still open after Close returned")
	}
	if ev, ok := nextEvent(t, s); ok {
		t.Errorf("Events still open after Close: %s", describe(ev))
	}
	if !errors.Is(s.Err(), pbx.ErrClosed) {
		t.Errorf("Err = %v, want ErrClosed", s.Err())
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	eventually(t, "the socket to close", func() bool { return srv.LiveSockets("1001") == 0 })
	if srv.Logouts("1001") != 0 {
		t.Error("Close logged out")
	}
}

func TestSessionLogout(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	s := open(t, srv, fastConfig(t, srv, ext))
	if err := s.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := awaitEnd(t, s); !errors.Is(err, pbx.ErrClosed) {
		t.Errorf("Err = %v, want ErrClosed", err)
	}
	if srv.Logouts("1001") != 1 {
		t.Errorf("logouts = %d, want 1", srv.Logouts("1001"))
	}
	eventually(t, "the socket to close", func() bool { return srv.LiveSockets("1001") == 0 })
	if err := s.Logout(context.Background()); err != nil || srv.Logouts("1001") != 1 {
		t.Errorf("second Logout: %v, %d logouts; want nil, 1", err, srv.Logouts("1001"))
	}
}

// TestNotices sends every state-only notification type, and those that are
// runtime errors only in another plan mode or user agent, or with another
// value: each is a Notice with its decoded msg, and the session lives on.
func TestNotices(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	s := open(t, srv, fastConfig(t, srv, ext))
	notices := []struct {
		typ int
		msg any
	}{
		{20008, map[string]any{"record_feature_code": "*2"}},
		{20047, map[string]any{"enb_ctl_record": 0}},
		{20048, map[string]any{"record_status": "recording", "call_feature": "record", "caller_origin_number": "1001", "callee_origin_number": "2000", "caller_sip_callid": "a", "callee_sip_callid": "b"}},
		{20053, map[string]any{}},
		{20065, map[string]any{"enable_nat_fqdn": 1}},
		{20066, map[string]any{"registername": "1001"}},
		{20153, map[string]any{"enable": 1}},              // SDK plan still on
		{20015, map[string]any{"enb_web_client": 1}},      // still enabled
		{20082, map[string]any{"enb_internal_client": 0}}, // cn plan only
		{10000, map[string]any{"username": "1002"}},       // another extension's login
	}
	for _, n := range notices {
		srv.Notify("1001", n.typ, n.msg)
		got := awaitNotice(t, s, n.typ)
		want, _ := json.Marshal(n.msg)
		if !jsonEqual(t, got.Msg, want) {
			t.Errorf("notice %d msg = %s, want %s", n.typ, got.Msg, want)
		}
	}
	if s.Err() != nil {
		t.Fatalf("session ended: %v", s.Err())
	}
	if n := len(srv.TopicLists("1001")); n != 1 {
		t.Errorf("%d topic lists, want 1: no notice should resubscribe", n)
	}
}

// TestLoginElsewhereConcernsOneExtension: the PBX broadcasts a login to
// every socket; only the extension that logged in elsewhere ends.
func TestLoginElsewhereConcernsOneExtension(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	alice := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	bob := srv.AddExtension(pbxtest.Extension{Number: "1002"})
	sa := open(t, srv, fastConfig(t, srv, alice))
	sb := open(t, srv, fastConfig(t, srv, bob))

	srv.Kick("1002")
	n := awaitNotice(t, sa, pbx.TypeLogin)
	if !jsonEqual(t, n.Msg, []byte(`{"username":"1002"}`)) {
		t.Errorf("notice msg = %s", n.Msg)
	}
	events, err := awaitEnd(t, sb)
	if !errors.Is(err, pbx.ErrLoggedInElsewhere) {
		t.Fatalf("1002 ended with %v, want LOGGED_IN_ELSEWHERE", err)
	}
	if len(events) == 0 {
		t.Error("1002 got no Notice for the 10000 frame")
	}
	// Alice still works.
	if _, err := srv.Call("1001", pbxtest.Call{Kind: pbxtest.Missed}); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, sa, func(*pbx.CDRChanged) bool { return true })
	if sa.Err() != nil {
		t.Fatalf("1001 ended: %v", sa.Err())
	}
}

// TestCloseWhileDelivering: a consumer that never reads must not keep
// Close from returning.
func TestCloseWhileDelivering(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	cfg.EventBuffer = 1
	cfg.DeliverTimeout = time.Hour
	s, err := pbx.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Should the test fail before its own Close, the session must not
	// outlive it (and log into a finished test).
	t.Cleanup(func() { _ = s.Close() })
	// The Up state fills the buffer; the first notice blocks the reader.
	eventually(t, "the socket", func() bool { return len(srv.TopicLists("1001")) == 1 })
	srv.Notify("1001", 20008, map[string]string{"record_feature_code": "*1"})
	srv.Notify("1001", 20008, map[string]string{"record_feature_code": "*2"})
	closed := make(chan struct{})
	go func() {
		_ = s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return while the reader waited on the consumer")
	}
	if !errors.Is(s.Err(), pbx.ErrClosed) {
		t.Errorf("Err = %v", s.Err())
	}
}

// TestSIPRegistrationCredentialsRemoved: a 20066 carries the SIP password;
// the session delivers the notice with the field kept and its value
// replaced, and no log line shows it.
func TestSIPRegistrationCredentialsRemoved(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	cfg := fastConfig(t, srv, ext)
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := open(t, srv, cfg)
	const password = "sip-Pa55word"
	srv.Notify("1001", pbx.TypeSIPRegistration, map[string]any{"realm": "pbx", "reg_name": "1001", "reg_password": password, "ha1": password})
	n := awaitNotice(t, s, pbx.TypeSIPRegistration)
	want := `{"realm":"pbx","reg_name":"1001","reg_password":"` + pbx.RemovedCredential + `","ha1":"` + pbx.RemovedCredential + `"}`
	if !jsonEqual(t, n.Msg, []byte(want)) {
		t.Errorf("notice msg %s, want %s", n.Msg, want)
	}
	// What a PBX puts in it: credentials at several depths.
	secrets := srv.NotifySIPRegistration("1001")
	n = awaitNotice(t, s, pbx.TypeSIPRegistration)
	if len(secrets) == 0 {
		t.Fatal("the simulator sent no credentials")
	}
	for _, secret := range secrets {
		if strings.Contains(string(n.Msg), secret) {
			t.Errorf("notice msg %s carries %q", n.Msg, secret)
		}
	}
	if c := strings.Count(string(n.Msg), pbx.RemovedCredential); c < len(secrets) {
		t.Errorf("%d values removed from %s, want at least %d", c, n.Msg, len(secrets))
	}
	// A frame that is dropped is logged with a prefix: still clean.
	srv.SendRaw("1001", `{"pwd":"`+password+`" garbage`)
	srv.SendRaw("1001", `"{\"pwd\":\"`+password+`\"}" garbage`)
	sentinel(t, srv, s, "*9")
	if strings.Contains(logs.String(), password) || strings.Contains(string(n.Msg), password) {
		t.Errorf("the SIP password shows:\n%s", logs.String())
	}
}

// TestAPITokenRejectionEndsSession: the API refuses the token while the
// socket stays up. A CDR query that hears so ends the session as the token
// probe would (socket closed, Events closed, Err wraps ErrTokenRejected),
// so that its owner logs in again; the caller still gets the PBX's error.
// Any other API error leaves the session alone.
func TestAPITokenRejectionEndsSession(t *testing.T) {
	srv := newPBX(t, pbxtest.Options{})
	ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
	s := open(t, srv, fastConfig(t, srv, ext))
	ctx := context.Background()

	srv.FailEndpoint("/api/v1.0/cdr/searchpersonal", 40002, "PARAMETER ERROR")
	if _, err := s.CDRQuery(ctx, pbx.CDRQuery{}); err == nil || pbx.IsTokenRejected(err) {
		t.Fatalf("CDRQuery = %v, want an API error that is no token rejection", err)
	}
	sentinel(t, srv, s, "*1")

	srv.FailEndpoint("/api/v1.0/cdr/searchpersonal", 0, "")
	srv.RejectAPITokens("1001", true) // the socket stays up and accepted
	_, err := s.CDRQuery(ctx, pbx.CDRQuery{})
	var ae *pbx.APIError
	if !errors.As(err, &ae) || ae.ErrCode != 10004 {
		t.Fatalf("CDRQuery = %v, want the PBX's errcode 10004", err)
	}
	if _, end := awaitEnd(t, s); !errors.Is(end, pbx.ErrTokenRejected) || !strings.Contains(end.Error(), "10004") {
		t.Fatalf("Err = %v, want ErrTokenRejected with the PBX's errcode", end)
	}
	eventually(t, "the socket to close", func() bool { return srv.LiveSockets("1001") == 0 })
	if srv.Logins("1001") != 1 {
		t.Errorf("logins = %d: the new login is the owner's", srv.Logins("1001"))
	}
}

// TestNumberStyles: a PBX that sends its integers as strings ("2546") or as
// floats (2546.0) works as one that sends them plain, in both plan modes:
// init flags, the extension, CDR pages and totals, 20049's summary; and
// nothing is reported as undecodable.
func TestNumberStyles(t *testing.T) {
	styles := map[string]pbxtest.NumberStyle{"strings": pbxtest.NumbersAsStrings, "floats": pbxtest.NumbersAsFloats}
	for name, style := range styles {
		for _, oem := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s, base_oem_id %d", name, oem), func(t *testing.T) {
				srv := newPBX(t, pbxtest.Options{BaseOEMID: oem})
				ext := srv.AddExtension(pbxtest.Extension{Number: "1001", Name: "Alice"})
				srv.SetNumberStyle(style)
				cfg := fastConfig(t, srv, ext)
				var problems recorder
				cfg.Hooks.DecodeProblem = func(endpoint, field string) { problems.Add(endpoint + " " + field) }
				s := open(t, srv, cfg)
				if got := s.Extension(); got != (pbx.Extension{ID: ext.ID, Number: "1001", Name: "Alice"}) {
					t.Errorf("Extension = %+v", got)
				}
				if want := []string{"en", "cn"}[oem]; s.Product().PlanMode() != want {
					t.Errorf("plan %s, want %s", s.Product().PlanMode(), want)
				}
				var stored []pbxtest.CDR
				for i, kind := range []pbxtest.CallKind{pbxtest.Incoming, pbxtest.Missed, pbxtest.Outgoing} {
					if kind == pbxtest.Missed {
						i = 0 // nobody talked
					}
					cdr, err := srv.Call("1001", pbxtest.Call{Kind: kind, Peer: "2000", TalkDuration: 7 * i})
					if err != nil {
						t.Fatal(err)
					}
					stored = append(stored, cdr)
					changed := awaitEvent(t, s, func(*pbx.CDRChanged) bool { return true })
					if changed.PersonalCDR.Timestamp != cdr.Timestamp || changed.PersonalCDR.TalkDuration != 7*i {
						t.Errorf("CDRChanged = %+v, want timestamp %d, talk %d", changed, cdr.Timestamp, 7*i)
					}
				}
				res, err := s.CDRQuery(context.Background(), pbx.CDRQuery{SortBy: "id", OrderBy: "asc"})
				if err != nil {
					t.Fatal(err)
				}
				var want []pbx.CDR
				b, _ := json.Marshal(stored)
				if err := json.Unmarshal(b, &want); err != nil {
					t.Fatal(err)
				}
				if res.TotalNumber != 3 || !reflect.DeepEqual(res.Records, want) {
					t.Errorf("page = %+v\nwant records %+v", res, want)
				}
				if !res.Records[1].Missed() {
					t.Errorf("the missed call is not: %+v", res.Records[1])
				}
				if p := problems.List(); len(p) != 0 {
					t.Errorf("reported as undecodable: %v", p)
				}
			})
		}
	}
}
