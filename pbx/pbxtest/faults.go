package pbxtest

import "time"

// Fault knobs. Each one changes the PBX's state first and then sends its
// frame, so a client reacting to the frame already sees the new state (a
// revoked token, a deleted extension). Frames go only to sockets subscribed
// to their type, and have all been written when the knob returns. Sockets
// stay open after a notification: tearing down is the client's job, as with
// a real PBX, and a client that fails to shows up in LiveSockets.

// Kick simulates a login of ext elsewhere: a 10000 frame {"username":ext}
// goes to the live sockets of every extension (the PBX broadcasts logins;
// only ext's own client must react), and ext's existing tokens become
// invalid.
func (s *Server) Kick(ext string) {
	s.mu.Lock()
	s.revokeTokens(ext)
	socks := s.subscribers("", typeLogin)
	s.mu.Unlock()
	deliver(socks, notification(typeLogin, map[string]string{"username": ext}))
}

// DeleteExtension removes ext: its tokens become invalid, logging in fails,
// and a 20007 frame goes to its sockets. Its activity figures remain.
func (s *Server) DeleteExtension(ext string) {
	s.mu.Lock()
	delete(s.exts, ext)
	s.revokeTokens(ext)
	socks := s.subscribers(ext, typeExtDeleted)
	s.mu.Unlock()
	deliver(socks, notification(typeExtDeleted, struct{}{}))
}

// ForceReLogin revokes ext's tokens and sends 20010 ("log in again") to its
// sockets.
func (s *Server) ForceReLogin(ext string) {
	s.mu.Lock()
	s.revokeTokens(ext)
	socks := s.subscribers(ext, typeReLogin)
	s.mu.Unlock()
	deliver(socks, notification(typeReLogin, struct{}{}))
}

// SetSDKPlan enables or disables the SDK plan and sends 20153 {"enable":1|0}
// to the sockets of every extension. While it is disabled, login answers
// errcode 70136; existing tokens stay valid.
func (s *Server) SetSDKPlan(enabled bool) {
	enable := 0
	if enabled {
		enable = 1
	}
	s.mu.Lock()
	s.sdkDisabled = !enabled
	socks := s.subscribers("", typeSDKPlan)
	s.mu.Unlock()
	deliver(socks, notification(typeSDKPlan, map[string]int{"enable": enable}))
}

// SetClientFlags sets ext's enb_web_client, enb_desktop_client and
// enb_internal_client, and for each one that changed sends its frame to ext's
// sockets: 20015 {"enb_web_client"}, 20013 {"enb_desktop_client"}, 20082
// {"enb_internal_client"}. It does nothing for an unknown extension.
func (s *Server) SetClientFlags(ext string, web, desktop, internal int) {
	var sends []func()
	s.mu.Lock()
	if e := s.exts[ext]; e != nil {
		for _, f := range []struct {
			typ  int
			key  string
			cur  *int
			next int
		}{
			{typeWebFlag, "enb_web_client", &e.EnbWebClient, web},
			{typeDesktopFlag, "enb_desktop_client", &e.EnbDesktopClient, desktop},
			{typeInternalFlag, "enb_internal_client", &e.EnbInternalClient, internal},
		} {
			if *f.cur != f.next {
				*f.cur = f.next
				socks, frame := s.subscribers(ext, f.typ), notification(f.typ, map[string]int{f.key: f.next})
				sends = append(sends, func() { deliver(socks, frame) })
			}
		}
	}
	s.mu.Unlock()
	for _, send := range sends {
		send()
	}
}

// RevokeTokens invalidates ext's tokens (the API then answers errcode 10004
// and subscribe upgrades HTTP 401) and closes its live sockets abruptly.
func (s *Server) RevokeTokens(ext string) {
	s.mu.Lock()
	s.revokeTokens(ext)
	s.mu.Unlock()
	s.DropSockets(ext)
}

// DropSockets closes ext's live sockets abruptly, without a close frame, as
// a network failure would. Its tokens stay valid, so the client can
// reconnect.
func (s *Server) DropSockets(ext string) {
	s.mu.Lock()
	socks := s.socketsOf(ext, nil)
	s.mu.Unlock()
	for _, c := range socks {
		s.drop(c)
	}
}

// StallHeartbeats stops (stall true) or resumes answering ext's "heartbeat"
// frames; they are still counted.
func (s *Server) StallHeartbeats(ext string, stall bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.activityOf(ext).stallHeartbeats = stall
}

// SendRaw sends frame as is to every live socket of ext, subscribed or not:
// for malformed frames and for frames such as
// {"type":20049,"msg":"...","errcode":-3}.
func (s *Server) SendRaw(ext string, frame string) {
	s.mu.Lock()
	socks := s.socketsOf(ext, nil)
	s.mu.Unlock()
	deliver(socks, []byte(frame))
}

// Notify sends a well-formed notification {"type":typ,"msg":"<msg as
// JSON>"} to ext's sockets subscribed to typ. It panics if msg cannot be
// encoded as JSON.
func (s *Server) Notify(ext string, typ int, msg any) {
	frame := notification(typ, msg)
	s.mu.Lock()
	socks := s.subscribers(ext, typ)
	s.mu.Unlock()
	deliver(socks, frame)
}

// FailEndpoint makes the API path (e.g. "/api/v1.0/cdr/searchpersonal")
// answer HTTP 200 {"errcode":errcode,"errmsg":errmsg} without doing
// anything; errcode 0 restores normal answers.
func (s *Server) FailEndpoint(path string, errcode int, errmsg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults[path]
	f.errcode, f.errmsg = errcode, errmsg
	s.setFault(path, f)
}

// SlowEndpoint delays every answer on the API path by d; 0 restores prompt
// answers. A delayed request ends early if the client goes away or the
// server closes.
func (s *Server) SlowEndpoint(path string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults[path]
	f.delay = d
	s.setFault(path, f)
}

// setFault stores f, forgetting it once it injects nothing. s.mu must be
// held.
func (s *Server) setFault(path string, f fault) {
	if f.errcode == 0 && f.delay <= 0 {
		delete(s.faults, path)
		return
	}
	s.faults[path] = f
}

// CloseUpgrades makes subscribe upgrades answer HTTP 503 while refuse is
// true, as a PBX that is restarting does. Open sockets are not affected.
func (s *Server) CloseUpgrades(refuse bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseWS = refuse
}

// SetVersion makes the PBX run another firmware from now on, as after an
// upgrade: getproduct reports version, and a topic_list must be the one of
// that firmware. Open sockets keep their subscription; a client learns of
// the change only by reading getproduct again. (A real upgrade restarts the
// PBX: combine with DropSockets.)
func (s *Server) SetVersion(version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version = version
}
