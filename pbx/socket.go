package pbx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/gorilla/websocket"
)

// subscribePath is the subscribe socket's path.
const subscribePath = apiPrefix + "subscribe"

// keepSocket keeps the subscribe socket up: dial, serve, and after any close
// reconnect with backoff, reusing the token. It returns the error that ends
// the session (a runtime error or a rejected token), or nil when ctx ends.
//
// The token probe: the SDK never notices a dead token, it only reconnects
// forever. Here a dial refused with HTTP 401/403, or two short failures in
// a row (a dial that fails, or a socket that closes sooner than
// ReconnectMin after it opened), make the session ask extension/getpersonal:
// an answer that rejects the token (IsTokenRejected) ends the session with
// ErrTokenRejected; any other API error, a transport error or a success
// means keep reconnecting.
func (s *Session) keepSocket(ctx context.Context) error {
	b := newReconnectDelays(s.cfg)
	wasUp := false
	shortFailures := 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(b.next())
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			if s.cfg.Hooks.Reconnect != nil {
				s.cfg.Hooks.Reconnect()
			}
			s.log.Debug("pbx socket reconnecting", "attempt", attempt)
			s.refreshProduct(ctx)
		}
		ws, status, err := s.dial(ctx)
		if ctx.Err() != nil {
			if ws != nil {
				ws.Close()
			}
			return nil
		}
		probe := false
		if err != nil {
			s.log.Warn("pbx socket dial failed", "err", err, "http_status", status)
			shortFailures++
			probe = status == http.StatusUnauthorized || status == http.StatusForbidden
			if status == 0 {
				s.client.unreachable()
			}
		} else {
			opened := time.Now()
			up, fatal, closeErr := s.serve(ctx, ws, wasUp)
			if fatal != nil {
				return fatal
			}
			if ctx.Err() != nil {
				return nil
			}
			// A lost socket may be a PBX restarting, perhaps into another
			// firmware.
			s.client.unreachable()
			if up {
				wasUp = true
				s.log.Warn("pbx socket down", "err", closeErr)
				s.deliver(ctx, nil, &SocketState{Up: false, Err: closeErr})
			} else {
				s.log.Warn("pbx socket failed before it was up", "err", closeErr)
			}
			if up && time.Since(opened) >= s.cfg.ReconnectMin {
				shortFailures = 0
				b.reset()
			} else {
				shortFailures++
			}
		}
		if probe || shortFailures >= 2 {
			shortFailures = 0
			if err := s.probeToken(ctx); err != nil {
				return err
			}
		}
	}
}

// refreshProduct takes the PBX's product from the shared cache before a
// socket opens again, reading it again if the PBX was unreachable or
// switched over meanwhile, and subscribes with the topic list of its
// firmware from then on. Without a cache, or when the PBX does not answer,
// the session keeps what it has: the SDK never reads it again at all.
func (s *Session) refreshProduct(ctx context.Context) {
	if s.cfg.ProductCache == nil {
		return
	}
	product, err := s.cfg.ProductCache.get(ctx, s.client.GetProduct)
	if err != nil {
		s.log.Debug("pbx product not read again; keeping the topic list", "err", err)
		return
	}
	topics := Topics(product.Version, s.cfg.UserAgent)
	s.mu.Lock()
	old, changed := s.product.Version, !slices.Equal(topics, s.topics)
	s.product, s.topics = product, topics
	s.mu.Unlock()
	if changed {
		s.log.Info("pbx firmware changed: new topic list", "version", product.Version, "previous_version", old, "topics", len(topics))
	}
}

// reconnectDelays yields the socket's reconnect delays: exponential from
// ReconnectMin, doubling, jittered by 25%, and never above ReconnectMax.
// (backoff caps the interval before it adds the jitter, so on its own the
// delay could exceed ReconnectMax by a quarter.)
type reconnectDelays struct {
	b   *backoff.ExponentialBackOff
	max time.Duration
}

func newReconnectDelays(cfg Config) *reconnectDelays {
	return &reconnectDelays{
		b: backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(cfg.ReconnectMin),
			backoff.WithMaxInterval(cfg.ReconnectMax),
			backoff.WithMaxElapsedTime(0),
			backoff.WithRandomizationFactor(0.25),
			backoff.WithMultiplier(2),
		),
		max: cfg.ReconnectMax,
	}
}

func (r *reconnectDelays) next() time.Duration { return min(r.b.NextBackOff(), r.max) }

func (r *reconnectDelays) reset() { r.b.Reset() }

// probeToken asks the PBX whether the token still works. Only an answer
// that says so (IsTokenRejected) ends the session: any other API error, or
// a transport error, may pass, and a new login would not cure it.
func (s *Session) probeToken(ctx context.Context) error {
	_, err := s.client.GetPersonal(ctx)
	switch {
	case IsTokenRejected(err):
		return tokenRejected(err)
	case err != nil:
		s.log.Info("pbx token probe inconclusive, reconnecting", "err", err)
	default:
		s.log.Debug("pbx token probe: token accepted")
	}
	return nil
}

// tokenRejected is why a session ends when an API call refused its token.
func tokenRejected(err error) error {
	var ae *APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%w: %s answered HTTP %d errcode %d %q", ErrTokenRejected, ae.Endpoint, ae.HTTPStatus, ae.ErrCode, ae.ErrMsg)
	}
	return fmt.Errorf("%w: %v", ErrTokenRejected, err)
}

// dial opens the subscribe socket. The handshake is bounded in time
// (RequestTimeout) and in size (maxHandshakeBytes). The returned error is
// redacted (the URL carries the token); status is the HTTP status of a
// refused handshake.
func (s *Session) dial(ctx context.Context) (*websocket.Conn, int, error) {
	u := url.URL{
		Scheme:   "wss",
		Host:     s.client.origin.Host,
		Path:     subscribePath,
		RawQuery: url.Values{"access_token": {s.client.Token()}}.Encode(),
	}
	// The connection whose handshake reads are bounded; gorilla dials it
	// once per DialContext, on this goroutine.
	var hc *handshakeConn
	d := websocket.Dialer{
		NetDialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := s.dialTLS(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			hc = c
			return c, nil
		},
		HandshakeTimeout: s.cfg.RequestTimeout,
		// Frames are small both ways (notifications in, heartbeats and
		// topic lists out): small read buffers and pooled write buffers
		// keep an idle socket cheap when thousands are open.
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		WriteBufferPool: socketWriteBuffers,
	}
	ws, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
			err = fmt.Errorf("%w (HTTP %d)", err, status)
		}
		return nil, status, fmt.Errorf("pbx %s: %w", subscribePath, s.client.red.redactErr(err))
	}
	hc.open()
	return ws, 0, nil
}

// serve runs one open socket: it subscribes, reports it up, and reads
// frames until the socket closes (closeErr), a notification raises a runtime
// error (fatal), or ctx ends. up reports whether the topic list went out.
func (s *Session) serve(ctx context.Context, ws *websocket.Conn, reconnect bool) (up bool, fatal, closeErr error) {
	ws.SetReadLimit(s.cfg.MaxFrameBytes)
	c := &conn{ws: ws, writeTimeout: s.cfg.RequestTimeout}
	// The topic list is the first frame, before the heartbeat goroutine
	// exists: started first, it could send a "heartbeat" ahead of it (a
	// reader delayed PingAfter on a loaded machine is enough), which the PBX
	// refuses before a topic list. The write is bounded by writeTimeout and
	// goes to a fresh socket's empty buffer.
	if err := s.subscribe(c); err != nil {
		ws.Close()
		return false, nil, err
	}
	hb := newHeartbeat(s.cfg, time.Now())
	hb.start(c)
	// The session's end closes the socket (with a close frame), which ends
	// the read below: a callback on the context, not a goroutine waiting
	// for it.
	closed := make(chan struct{})
	stopClosing := context.AfterFunc(ctx, func() {
		defer close(closed)
		c.closeGracefully()
		ws.Close()
	})
	defer func() {
		if stopClosing() {
			ws.Close()
		} else {
			<-closed
		}
		hb.stop()
	}()

	s.log.Info("pbx socket up", "reconnect", reconnect, "topics", len(s.topics))
	s.deliver(ctx, hb, &SocketState{Up: true, Reconnect: reconnect})

	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				s.dropFrame(DropTooLarge, Frame{}, nil)
			}
			if hb.timedOut() {
				err = ErrHeartbeatTimeout
			}
			return true, nil, fmt.Errorf("pbx socket: %w", s.client.red.redactErr(err))
		}
		f, reason := Frame{}, DropNotJSON // a binary frame is no text, let alone JSON
		if mt == websocket.TextMessage {
			f, reason = DecodeFrame(data)
		}
		hb.arrived(time.Now(), f.Kind == FrameHeartbeat)
		if reason != "" {
			s.dropFrame(reason, f, data)
			continue
		}
		if len(f.Problems) > 0 {
			s.client.reportProblems("socket:"+strconv.Itoa(f.Type), f.Problems)
		}
		switch f.Kind {
		case FrameResubscribe:
			s.log.Info("pbx asked to subscribe again (errcode -3)")
			if err := s.resubscribe(ctx, hb, c); err != nil {
				return true, nil, err
			}
		case FrameNotification:
			if f.Type == TypeHotStandby {
				// Subscribe before delivering the notice: a slow consumer
				// must not delay it. The standby may run another firmware:
				// its product is read again before the next socket or login.
				s.client.unreachable()
				s.log.Info("pbx hot-standby switch-over: subscribing again")
				if err := s.resubscribe(ctx, hb, c); err != nil {
					return true, nil, err
				}
			}
			rt := s.rules.check(f)
			s.deliver(ctx, hb, f.Event)
			if rt != nil {
				return true, rt, nil
			}
		}
	}
}

// resubscribe sends the topic list again on an open socket and reports the
// gap: whatever the PBX asked it for (errcode -3, a 20104 switch-over), the
// notifications before it may be lost.
func (s *Session) resubscribe(ctx context.Context, hb *heartbeat, c *conn) error {
	if err := s.subscribe(c); err != nil {
		return err
	}
	s.deliver(ctx, hb, &SocketState{Up: true, Reconnect: true, Resubscribed: true})
	return nil
}

// subscribe sends the topic list.
func (s *Session) subscribe(c *conn) error {
	frame, err := json.Marshal(struct {
		TopicList []int `json:"topic_list"`
	}{s.topics})
	if err != nil {
		return err
	}
	if err := c.write(frame); err != nil {
		return fmt.Errorf("pbx socket: sending the topic list: %w", s.client.red.redactErr(err))
	}
	return nil
}

// dropFrame counts and logs a dropped frame. The log shows a short, redacted
// prefix of a frame that is not JSON, and nothing of the others' content.
// The count (Hooks.FrameDropped) is exact; the warnings are sampled per
// reason (warnSampler), so a flood of garbage gives a handful of lines.
func (s *Session) dropFrame(reason DropReason, f Frame, data []byte) {
	if s.cfg.Hooks.FrameDropped != nil {
		s.cfg.Hooks.FrameDropped(string(reason))
	}
	if reason == DropErrcode2 {
		s.log.Debug("pbx frame dropped", "reason", reason, "type", f.Type)
		return
	}
	ok, suppressed := s.client.warns.allow("frame dropped: "+string(reason), time.Now())
	if !ok {
		return
	}
	attrs := []any{"reason", reason}
	switch reason {
	case DropNotJSON:
		attrs = append(attrs, "len", len(data), "prefix", s.client.red.framePrefix(data))
	case DropTooLarge:
		attrs = append(attrs, "max_frame_bytes", s.cfg.MaxFrameBytes)
	default:
		attrs = append(attrs, "type", f.Type, "len", len(data))
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	msg := "pbx frame dropped"
	if reason == DropTooLarge {
		msg = "pbx frame dropped, reconnecting"
	}
	s.log.Warn(msg, attrs...)
}

// conn is one subscribe socket's write side: gorilla allows one writer at a
// time, and both the reader (topic lists) and the heartbeat write.
type conn struct {
	ws           *websocket.Conn
	writeTimeout time.Duration
	mu           sync.Mutex
}

func (c *conn) write(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return err
	}
	return c.ws.WriteMessage(websocket.TextMessage, frame)
}

// closeGracefully sends a close frame (best effort, bounded) before the
// socket is closed, when the session itself ends.
func (c *conn) closeGracefully() {
	deadline := time.Now().Add(min(c.writeTimeout, time.Second))
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
}

// socketWriteBuffers is shared by every socket: a write buffer is held only
// while a frame is written.
var socketWriteBuffers = &sync.Pool{}
