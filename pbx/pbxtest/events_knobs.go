package pbxtest

import (
	"slices"
	"time"
)

// The event socket's observation methods and knobs.

// EventSockets returns how many OpenAPI event sockets are open now.
func (s *Server) EventSockets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live().socks)
}

// MaxEventSockets returns the most OpenAPI event sockets ever open at once.
func (s *Server) MaxEventSockets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live().maxSocks
}

// EventTopicLists returns every valid topic_list the event sockets sent, in
// the order received.
func (s *Server) EventTopicLists() [][]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]int
	for _, l := range s.live().topicLists {
		out = append(out, slices.Clone(l))
	}
	return out
}

// EventHeartbeats returns how many "heartbeat" frames the event sockets
// sent, answered or not.
func (s *Server) EventHeartbeats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live().heartbeats
}

// EventSocketsExpired returns how many event sockets were closed because
// their access token expired while they were open: a client that renews
// in time never has one.
func (s *Server) EventSocketsExpired() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live().expired
}

// EventSocketsRevoked returns how many event sockets were closed because
// their access token was revoked (del_token, a refresh_token with
// SetRefreshRevokesOld, RevokeOpenAPITokens), which the PBX notices at the
// socket's next frame from the client.
func (s *Server) EventSocketsRevoked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live().revoked
}

// SerialNumber returns the sn the PBX puts in every event frame.
func (s *Server) SerialNumber() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live().serial
}

// SetEventIdleTimeout sets how long an event socket may go without a frame
// either way before the PBX closes it (DefaultEventIdleTimeout), for
// sockets opened from now on.
func (s *Server) SetEventIdleTimeout(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live().idle = d
}

// StallEventHeartbeats stops (stall true) or resumes answering the event
// sockets' "heartbeat" frames; they are still counted.
func (s *Server) StallEventHeartbeats(stall bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live().stallHeartbeats = stall
}

// DropEventSockets closes every event socket abruptly, without a close
// frame, as a network failure would.
func (s *Server) DropEventSockets() {
	s.mu.Lock()
	var socks []*eventSocket
	for c := range s.live().socks {
		socks = append(socks, c)
	}
	s.mu.Unlock()
	for _, c := range socks {
		s.dropEvent(c)
	}
}
