package pbx_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

func TestRuntimeErrors(t *testing.T) {
	tests := []struct {
		name     string
		opts     pbxtest.Options
		ua       string
		harmless func(srv *pbxtest.Server) int // a frame first that must not end the session; returns its type
		fault    func(srv *pbxtest.Server)
		typ      int
		want     *pbx.Error
		logout   bool
	}{
		{name: "10000 logged in elsewhere", fault: func(srv *pbxtest.Server) { srv.Kick("1001") }, typ: 10000, want: pbx.ErrLoggedInElsewhere},
		{name: "20007 extension deleted", fault: func(srv *pbxtest.Server) { srv.DeleteExtension("1001") }, typ: 20007, want: pbx.ErrExtensionDeleted},
		{name: "20010 re-login", fault: func(srv *pbxtest.Server) { srv.ForceReLogin("1001") }, typ: 20010, want: pbx.ErrReLogin},
		{name: "20154 re-login", fault: func(srv *pbxtest.Server) { srv.Notify("1001", 20154, map[string]any{}) }, typ: 20154, want: pbx.ErrReLogin},
		{name: "20153 SDK plan disabled", fault: func(srv *pbxtest.Server) { srv.SetSDKPlan(false) }, typ: 20153, want: pbx.ErrSDKPlanDisabled},
		{name: "20015 web client disabled, en plan WebClient",
			harmless: func(srv *pbxtest.Server) int { srv.SetClientFlags("1001", 1, 0, 0); return 20082 },
			fault:    func(srv *pbxtest.Server) { srv.SetClientFlags("1001", 0, 0, 0) }, typ: 20015, want: pbx.ErrLinkusDisabled, logout: true},
		{name: "20013 desktop client disabled, en plan WebPC", ua: pbx.UserAgentWebPC,
			harmless: func(srv *pbxtest.Server) int { srv.SetClientFlags("1001", 0, 1, 1); return 20015 },
			fault:    func(srv *pbxtest.Server) { srv.SetClientFlags("1001", 0, 0, 1) }, typ: 20013, want: pbx.ErrLinkusDisabled, logout: true},
		{name: "20082 internal client disabled, cn plan", opts: pbxtest.Options{BaseOEMID: 1},
			harmless: func(srv *pbxtest.Server) int { srv.SetClientFlags("1001", 0, 1, 1); return 20015 },
			fault:    func(srv *pbxtest.Server) { srv.SetClientFlags("1001", 0, 1, 0) }, typ: 20082, want: pbx.ErrLinkusDisabled, logout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newPBX(t, tt.opts)
			ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
			cfg := fastConfig(t, srv, ext)
			cfg.UserAgent = tt.ua
			s := open(t, srv, cfg)
			if tt.harmless != nil {
				typ := tt.harmless(srv)
				awaitNotice(t, s, typ)
				if s.Err() != nil {
					t.Fatalf("a %d frame ended the session: %v", typ, s.Err())
				}
			}
			tt.fault(srv)
			events, err := awaitEnd(t, s)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Err = %v, want %v", err, tt.want)
			}
			if code, ok := pbx.CodeOf(err); !ok || code.Code != tt.want.Code {
				t.Errorf("CodeOf = %v, want %d", code, tt.want.Code)
			}
			var rt *pbx.RuntimeError
			if !errors.As(err, &rt) || rt.Type != tt.typ {
				t.Errorf("Err = %#v, want a *RuntimeError of type %d", err, tt.typ)
			}
			// The frame's Notice comes first, and is the last event.
			if len(events) == 0 {
				t.Fatal("no event before the end")
			}
			if n, ok := events[len(events)-1].(*pbx.Notice); !ok || n.Type != tt.typ {
				t.Errorf("last event = %s, want the Notice of %d", describe(events[len(events)-1]), tt.typ)
			}
			wantLogouts := 0
			if tt.logout {
				wantLogouts = 1
			}
			if got := srv.Logouts("1001"); got != wantLogouts {
				t.Errorf("logouts = %d, want %d", got, wantLogouts)
			}
			eventually(t, "the session to close its socket", func() bool { return srv.LiveSockets("1001") == 0 })
			if n := srv.Logins("1001"); n != 1 {
				t.Errorf("logins = %d: a session must not log in again by itself", n)
			}
		})
	}
}

func TestRuntimeErrorsAtInit(t *testing.T) {
	tests := []struct {
		name    string
		opts    pbxtest.Options
		ua      string
		prepare func(srv *pbxtest.Server)
		want    *pbx.Error // nil: Open succeeds
		logins  int
		logouts int
	}{
		{name: "web client disabled, en WebClient", prepare: func(srv *pbxtest.Server) { srv.SetClientFlags("1001", 0, 1, 1) },
			want: pbx.ErrLinkusDisabled, logins: 1, logouts: 1},
		{name: "desktop client disabled, en WebPC", ua: pbx.UserAgentWebPC, prepare: func(srv *pbxtest.Server) { srv.SetClientFlags("1001", 1, 0, 1) },
			want: pbx.ErrLinkusDisabled, logins: 1, logouts: 1},
		{name: "web client disabled, en WebPC", ua: pbx.UserAgentWebPC, prepare: func(srv *pbxtest.Server) { srv.SetClientFlags("1001", 0, 1, 1) },
			logins: 1},
		{name: "internal client disabled, cn", opts: pbxtest.Options{BaseOEMID: 1}, prepare: func(srv *pbxtest.Server) { srv.SetClientFlags("1001", 1, 1, 0) },
			want: pbx.ErrLinkusDisabled, logins: 1, logouts: 1},
		{name: "web client disabled, cn", opts: pbxtest.Options{BaseOEMID: 1}, prepare: func(srv *pbxtest.Server) { srv.SetClientFlags("1001", 0, 0, 1) },
			logins: 1},
		{name: "SDK plan disabled", prepare: func(srv *pbxtest.Server) { srv.SetSDKPlan(false) }, want: pbx.ErrSDKPlanDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newPBX(t, tt.opts)
			ext := srv.AddExtension(pbxtest.Extension{Number: "1001"})
			tt.prepare(srv)
			cfg := fastConfig(t, srv, ext)
			cfg.UserAgent = tt.ua
			s, err := pbx.Open(context.Background(), cfg)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				_ = s.Close()
			} else {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Open: err = %v, want %v", err, tt.want)
				}
				if code, ok := pbx.CodeOf(err); !ok || code.Code != tt.want.Code {
					t.Errorf("CodeOf = %v, want %d", code, tt.want.Code)
				}
			}
			if srv.Logins("1001") != tt.logins || srv.Logouts("1001") != tt.logouts {
				t.Errorf("logins %d, logouts %d; want %d, %d", srv.Logins("1001"), srv.Logouts("1001"), tt.logins, tt.logouts)
			}
		})
	}
}
