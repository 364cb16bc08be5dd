package pbxtest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Notification types the fault knobs send.
const (
	typeLogin           = 10000
	typeExtDeleted      = 20007
	typeReLogin         = 20010
	typeDesktopFlag     = 20013
	typeWebFlag         = 20015
	typeCDRChanged      = 20049
	typeSIPRegistration = 20066
	typeInternalFlag    = 20082
	typeSDKPlan         = 20153
)

// knownTopics are the topics the reference lists: the SDK's base set, the
// new-firmware pair 20153/20154 and WebPC's 20013. Of these, a socket must
// subscribe to exactly the ones its firmware and user agent call for (see
// expectedTopics).
var knownTopics = map[int]bool{
	10000: true, 20007: true, 20008: true, 20010: true, 20013: true, 20015: true,
	20047: true, 20048: true, 20049: true, 20053: true, 20065: true, 20066: true,
	20082: true, 20104: true, 20153: true, 20154: true,
}

// socket is one open subscribe socket.
type socket struct {
	srv   *Server
	ext   string
	webPC bool // the user agent of the login whose token opened it
	ws    *websocket.Conn
	wmu   sync.Mutex // serializes writes: gorilla allows one writer at a time

	// Guarded by srv.mu.
	topics map[int]bool // nil until the first topic_list
	gone   bool
}

// subscribe upgrades GET /api/v1.0/subscribe?access_token=T. The browser SDK
// cannot set headers on a WebSocket, so the token is only ever read from the
// query.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	token, _ := singleParam(r, "access_token")
	s.mu.Lock()
	switch {
	case s.closed || s.refuseWS:
		s.mu.Unlock()
		http.Error(w, "subscribe sockets refused", http.StatusServiceUnavailable)
		return
	case s.quirks.endlessHandshake:
		s.sockWG.Add(1) // hijacked below: connWG lets go of it
		s.mu.Unlock()
		defer s.sockWG.Done()
		s.endlessHandshake(w)
		return
	case s.extensionOf(token) == nil:
		s.mu.Unlock()
		http.Error(w, "invalid or expired token", http.StatusUnauthorized)
		return
	}
	// Counted from before the upgrade: once hijacked, the connection is no
	// longer tracked by connWG, and Close must still wait for this goroutine.
	s.sockWG.Add(1)
	s.mu.Unlock()
	defer s.sockWG.Done()

	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &socket{srv: s, ws: ws}
	s.mu.Lock()
	e := s.extensionOf(token)
	if s.closed || e == nil { // closed or revoked during the upgrade
		s.mu.Unlock()
		c.abort()
		return
	}
	c.ext, c.webPC = e.Number, s.tokens[token].webPC
	if s.sockets[c.ext] == nil {
		s.sockets[c.ext] = map[*socket]struct{}{}
	}
	s.sockets[c.ext][c] = struct{}{}
	a := s.activityOf(c.ext)
	a.live++
	a.maxLive = max(a.maxLive, a.live)
	if r.TLS != nil && r.TLS.DidResume {
		a.resumed++
	}
	s.mu.Unlock()
	s.log.Debug("pbxtest: socket open", "ext", c.ext)
	c.run()
}

// run reads the client's frames until the socket ends. The first frame must
// be a topic_list; after it, "heartbeat" and further topic_lists are the
// only frames the SDK sends. Anything else ends the socket with a policy
// violation, so that protocol mistakes fail loudly in tests.
func (c *socket) run() {
	defer c.srv.drop(c)
	c.ws.SetReadLimit(maxFrameSize)
	// A socket that the client closes with a close handshake is no longer
	// live once the client has the answer: a login right after it must not
	// count as knocking it out.
	c.ws.SetCloseHandler(func(code int, _ string) error {
		c.srv.unregister(c)
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
		return nil
	})
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if kind != websocket.TextMessage {
			c.reject("binary frames are not part of the protocol")
			return
		}
		if string(data) == "heartbeat" {
			if !c.srv.heartbeat(c) {
				c.reject("heartbeat before topic_list")
				return
			}
			continue
		}
		topics, err := parseTopicList(data)
		if err != nil {
			c.reject(err.Error())
			return
		}
		if why := topicMismatch(topics, expectedTopics(c.srv.firmware(), c.webPC)); why != "" {
			c.reject(why)
			return
		}
		c.srv.subscribed(c, topics)
	}
}

// heartbeat counts a heartbeat and answers it unless stalled. It reports
// false if the socket has not subscribed yet.
func (s *Server) heartbeat(c *socket) bool {
	s.mu.Lock()
	if c.topics == nil {
		s.mu.Unlock()
		return false
	}
	a := s.activityOf(c.ext)
	a.heartbeats++
	stalled := a.stallHeartbeats
	s.mu.Unlock()
	if !stalled {
		c.send([]byte("heartbeat response"))
	}
	return true
}

// subscribed records a topic_list and makes it the socket's subscription,
// replacing any earlier one (the SDK re-subscribes on errcode -3 and 20104).
func (s *Server) subscribed(c *socket, topics []int) {
	set := make(map[int]bool, len(topics))
	for _, t := range topics {
		set[t] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.topics = set
	a := s.activityOf(c.ext)
	a.topicLists = append(a.topicLists, topics)
}

// parseTopicList accepts exactly the SDK's frame: an object whose only key
// is topic_list, holding known topics as integers in strictly ascending
// order.
func parseTopicList(data []byte) ([]int, error) {
	var frame map[string]json.RawMessage
	if err := json.Unmarshal(data, &frame); err != nil || frame == nil {
		return nil, errors.New("frame is neither heartbeat nor a JSON object")
	}
	var raw []json.RawMessage
	if len(frame) != 1 || json.Unmarshal(frame["topic_list"], &raw) != nil || len(raw) == 0 {
		return nil, errors.New(`want {"topic_list":[...]} with a non-empty list`)
	}
	topics := make([]int, len(raw))
	for i, r := range raw {
		t, err := strconv.Atoi(string(r))
		switch {
		case err != nil:
			return nil, fmt.Errorf("topic %s is not an integer", r)
		case !knownTopics[t]:
			return nil, fmt.Errorf("unknown topic %d", t)
		case i > 0 && t <= topics[i-1]:
			return nil, errors.New("topics not in ascending order")
		}
		topics[i] = t
	}
	return topics, nil
}

// send writes one text frame, with a deadline; a socket that cannot take it
// is dropped, as a PBX drops a dead peer. It reports whether the frame was
// written.
func (c *socket) send(frame []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		c.srv.drop(c)
		return false
	}
	return true
}

// reject ends the socket with a policy-violation close frame naming the
// protocol mistake.
func (c *socket) reject(reason string) {
	c.srv.log.Warn("pbxtest: protocol violation on subscribe socket", "ext", c.ext, "reason", reason)
	c.shutdown(websocket.ClosePolicyViolation, reason)
}

// shutdown sends a close frame, then closes the connection. WriteControl
// may run concurrently with send, so no lock is needed.
func (c *socket) shutdown(code int, reason string) {
	if len(reason) > 120 { // control frame payloads are limited to 125 bytes
		reason = reason[:120]
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	c.srv.drop(c)
}

// drop unregisters the socket and closes its TCP connection. It is
// idempotent, and unregistering here rather than when the reader notices
// makes fault knobs synchronous: once DropSockets returns, LiveSockets is 0
// and no frame reaches the dropped sockets.
func (s *Server) drop(c *socket) {
	s.unregister(c)
	c.abort()
}

// unregister takes the socket out of the live ones, once.
func (s *Server) unregister(c *socket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.gone {
		c.gone = true
		delete(s.sockets[c.ext], c)
		if len(s.sockets[c.ext]) == 0 {
			delete(s.sockets, c.ext)
		}
		s.activityOf(c.ext).live--
		s.log.Debug("pbxtest: socket closed", "ext", c.ext)
	}
}

// abort closes the TCP connection under the TLS layer: the peer sees the
// connection end without a close frame or even a TLS close_notify, as when a
// PBX or the network dies.
func (c *socket) abort() {
	nc := c.ws.NetConn()
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	_ = nc.Close()
}

// socketsWhere returns the live sockets that match. s.mu must be held.
func (s *Server) socketsWhere(match func(*socket) bool) []*socket {
	var out []*socket
	for ext := range s.sockets {
		out = append(out, s.socketsOf(ext, match)...)
	}
	return out
}

// socketsOf returns the live sockets of ext that match (all of them if match
// is nil), without looking at other extensions' sockets: logins of
// thousands of extensions each look for their own. s.mu must be held.
func (s *Server) socketsOf(ext string, match func(*socket) bool) []*socket {
	var out []*socket
	for c := range s.sockets[ext] {
		if match == nil || match(c) {
			out = append(out, c)
		}
	}
	return out
}

// subscribers returns the sockets of ext (of every extension if ext is "")
// subscribed to typ. s.mu must be held.
func (s *Server) subscribers(ext string, typ int) []*socket {
	subscribed := func(c *socket) bool { return c.topics[typ] }
	if ext == "" {
		return s.socketsWhere(subscribed)
	}
	return s.socketsOf(ext, subscribed)
}

// deliver sends the frame to each socket. It is called without s.mu, since
// a write can take up to writeTimeout.
func deliver(socks []*socket, frame []byte) {
	for _, c := range socks {
		c.send(frame)
	}
}

// notification builds a frame {"type":typ,"msg":"<msg as JSON>"}: the SDK
// decodes msg a second time.
func notification(typ int, msg any) []byte {
	inner, err := json.Marshal(msg)
	if err != nil {
		panic(fmt.Sprintf("pbxtest: notification %d: cannot encode msg: %v", typ, err))
	}
	frame, _ := json.Marshal(struct { // an int and a string always encode
		Type int    `json:"type"`
		Msg  string `json:"msg"`
	}{typ, string(inner)})
	return frame
}
