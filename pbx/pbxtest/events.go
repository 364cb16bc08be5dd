package pbxtest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The OpenAPI event socket of shared/reference/openapi-events.md:
// GET /openapi/v1.0/subscribe?access_token=T upgrades to a WebSocket whose
// first frame must be {"topic_list":[...]} (a non-empty list of distinct
// integer event types, 30005..30036), answered {"errcode":0,"errmsg":
// "SUCCESS"}; a bad one is answered errcode 40002 and the socket closed with
// 1008. "heartbeat" is answered "heartbeat response" (a heartbeat before the
// topic_list is a protocol violation). A socket with no traffic either way
// for the idle timeout (60 s, SetEventIdleTimeout) is closed, as the PBX
// does. The reference leaves open what becomes of a socket whose token
// ends; here it is closed (1008) when the token expires, or at its next
// frame from the client once the token is revoked: the strict reading,
// which a client survives only by renewing in time.

// DefaultEventIdleTimeout is how long an event socket may be silent both
// ways before the PBX closes it.
const DefaultEventIdleTimeout = 60 * time.Second

// The event types a topic_list may hold: by a third-party summary the
// events run 30005..30036.
const (
	minEventType = 30005
	maxEventType = 30036
)

// The event types the simulator sends.
const (
	typeRegistration   = 30007
	typeExtCallStatus  = 30008
	typePresence       = 30009
	typeCallState      = 30011
	typeNewCDR         = 30012
	typeSystemInfo     = 30034
	typeSystemAlert    = 30036
	defaultTrunkName   = "SIM-TRUNK"
	eventSubscribePath = "/openapi/v1.0/subscribe"
)

// liveState is the OpenAPI event socket's and the live calls' state.
// Guarded by Server.mu, except emitMu.
type liveState struct {
	// emitMu makes each change and the frames it sends one step, so that
	// frames leave in the order of the changes. Taken before Server.mu.
	emitMu sync.Mutex

	serial          string
	socks           map[*eventSocket]struct{}
	maxSocks        int
	topicLists      [][]int
	heartbeats      int
	expired         int // sockets closed because their token expired
	revoked         int // sockets closed because their token was revoked
	stallHeartbeats bool
	idle            time.Duration
	quirks          EventQuirks
	frames          int // events sent, for the quirks that vary per frame

	calls       map[string]*liveCall
	nextCall    int
	nextChannel int
	extStatus   map[string]string // the last 30008 status sent per extension
}

// live returns the live state, making it on first use. s.mu must be held.
func (s *Server) live() *liveState {
	if s.ls == nil {
		s.ls = &liveState{
			serial:    "3631A2124" + strings.ToUpper(randomHex(2))[:3],
			socks:     map[*eventSocket]struct{}{},
			idle:      DefaultEventIdleTimeout,
			calls:     map[string]*liveCall{},
			extStatus: map[string]string{},
		}
	}
	return s.ls
}

// liveLocked returns the live state under s.mu.
func (s *Server) liveLocked() *liveState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live()
}

// eventSocket is one open OpenAPI event socket.
type eventSocket struct {
	srv       *Server
	ws        *websocket.Conn
	wmu       sync.Mutex
	pair      *tokenPair
	lastTouch atomic.Int64 // unix nanoseconds of the last frame either way
	done      chan struct{}
	closeOnce sync.Once

	topics map[int]bool // guarded by srv.mu; nil until subscribed
	gone   bool         // guarded by srv.mu
}

// eventSubscribe upgrades an OpenAPI event socket. Like every OpenAPI
// request it needs a User-Agent; the token is read from the query only.
func (s *Server) eventSubscribe(w http.ResponseWriter, r *http.Request) {
	if ua := r.UserAgent(); ua == "" || strings.HasPrefix(ua, "Go-http-client/") {
		writeJSON(w, http.StatusForbidden, errOANoUserAgent)
		return
	}
	token, valid := singleParam(r, "access_token")
	s.mu.Lock()
	oa := s.openAPI()
	oa.expire(time.Now())
	pair := oa.access[token]
	switch {
	case s.closed || s.refuseWS:
		s.mu.Unlock()
		http.Error(w, "subscribe sockets refused", http.StatusServiceUnavailable)
		return
	case !valid || pair == nil || r.Header.Get("Authorization") != "":
		s.mu.Unlock()
		writeJSON(w, http.StatusUnauthorized, errInvalidToken)
		return
	}
	s.sockWG.Add(1) // hijacked below: connWG lets go of it
	s.mu.Unlock()
	defer s.sockWG.Done()

	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &eventSocket{srv: s, ws: ws, pair: pair, done: make(chan struct{})}
	c.touch()
	s.mu.Lock()
	ls := s.live()
	if s.closed || oa.access[token] == nil {
		s.mu.Unlock()
		c.close()
		return
	}
	ls.socks[c] = struct{}{}
	ls.maxSocks = max(ls.maxSocks, len(ls.socks))
	s.mu.Unlock()
	c.run()
}

func (c *eventSocket) touch() { c.lastTouch.Store(time.Now().UnixNano()) }

// run reads the client's frames until the socket ends, with a watcher
// beside it for the server's end, the token's expiry and the idle timeout.
func (c *eventSocket) run() {
	defer c.srv.dropEvent(c)
	go c.watch()
	c.ws.SetReadLimit(maxFrameSize)
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		c.touch()
		switch {
		case !c.srv.tokenLive(c):
			return
		case kind != websocket.TextMessage:
			c.reject("binary frames are not part of the protocol")
			return
		case string(data) == "heartbeat":
			if !c.srv.eventHeartbeat(c) {
				c.reject("heartbeat before topic_list")
				return
			}
			continue
		}
		topics, err := parseEventTopics(data)
		if err != nil {
			c.send(mustJSON(errParameter))
			c.reject(err.Error())
			return
		}
		if c.srv.eventSubscribed(c, topics) {
			c.send(mustJSON(success))
		}
	}
}

// watch ends the socket when the server closes, the token expires, or the
// socket has been idle too long.
func (c *eventSocket) watch() {
	c.srv.mu.Lock()
	expires, idle := time.Until(c.pair.accessExp), c.srv.live().idle
	c.srv.mu.Unlock()
	expiry := time.NewTimer(max(expires, 0))
	defer expiry.Stop()
	tick := time.NewTicker(min(idle/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.srv.done:
			c.shutdown(websocket.CloseGoingAway, "PBX shutting down")
			return
		case <-expiry.C:
			c.srv.tokenLive(c)
			return
		case <-tick.C:
			if time.Since(time.Unix(0, c.lastTouch.Load())) >= idle {
				c.shutdown(websocket.CloseNormalClosure, "idle")
				return
			}
		}
	}
}

// tokenLive reports whether the socket's token is still valid, and if not
// closes the socket (counted in EventSocketsExpired or
// EventSocketsRevoked).
func (s *Server) tokenLive(c *eventSocket) bool {
	s.mu.Lock()
	oa := s.openAPI()
	expired := !time.Now().Before(c.pair.accessExp)
	live := !expired && oa.access[c.pair.access] == c.pair
	switch {
	case live || c.gone:
	case expired:
		s.live().expired++
	default:
		s.live().revoked++
	}
	s.mu.Unlock()
	if !live {
		c.shutdown(websocket.ClosePolicyViolation, "access token expired")
	}
	return live
}

// eventHeartbeat counts a heartbeat and answers it unless stalled; false if
// the socket has not subscribed.
func (s *Server) eventHeartbeat(c *eventSocket) bool {
	s.mu.Lock()
	ls := s.live()
	if c.topics == nil {
		s.mu.Unlock()
		return false
	}
	ls.heartbeats++
	stalled := ls.stallHeartbeats
	s.mu.Unlock()
	if !stalled {
		c.send([]byte("heartbeat response"))
	}
	return true
}

// eventSubscribed makes topics the socket's subscription and reports
// whether to answer it.
func (s *Server) eventSubscribed(c *eventSocket, topics []int) bool {
	set := make(map[int]bool, len(topics))
	for _, t := range topics {
		set[t] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.live()
	c.topics = set
	ls.topicLists = append(ls.topicLists, topics)
	return !ls.quirks.NeverAckSubscribe
}

// parseEventTopics accepts {"topic_list":[...]} and nothing else: a
// non-empty list of distinct integers, each an event type.
func parseEventTopics(data []byte) ([]int, error) {
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
		case t < minEventType || t > maxEventType:
			return nil, fmt.Errorf("unknown event type %d", t)
		case slices.Contains(topics[:i], t):
			return nil, fmt.Errorf("event type %d given twice", t)
		}
		topics[i] = t
	}
	return topics, nil
}

// send writes one text frame with a deadline; a socket that cannot take it
// is dropped. It reports whether the frame was written.
func (c *eventSocket) send(frame []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		c.srv.dropEvent(c)
		return false
	}
	c.touch()
	return true
}

func (c *eventSocket) reject(reason string) {
	c.srv.log.Warn("pbxtest: protocol violation on the OpenAPI event socket", "reason", reason)
	c.shutdown(websocket.ClosePolicyViolation, reason)
}

// shutdown sends a close frame, then drops the socket.
func (c *eventSocket) shutdown(code int, reason string) {
	if len(reason) > 120 {
		reason = reason[:120]
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	c.srv.dropEvent(c)
}

// dropEvent unregisters the socket and closes its connection; idempotent.
func (s *Server) dropEvent(c *eventSocket) {
	s.mu.Lock()
	if !c.gone {
		c.gone = true
		delete(s.live().socks, c)
	}
	s.mu.Unlock()
	c.close()
}

// close closes the TCP connection under the TLS layer, without a
// close_notify that could block on a peer that does not read.
func (c *eventSocket) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		nc := c.ws.NetConn()
		if t, ok := nc.(*tls.Conn); ok {
			nc = t.NetConn()
		}
		_ = nc.Close()
	})
}

// eventSubscribers returns the sockets subscribed to typ whose token is
// still valid. s.mu must be held.
func (s *Server) eventSubscribers(typ int) []*eventSocket {
	var out []*eventSocket
	for c := range s.live().socks {
		if c.topics[typ] {
			out = append(out, c)
		}
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("pbxtest: encode: " + err.Error())
	}
	return b
}
