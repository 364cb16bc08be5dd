package openapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

// eventSocketPath is the OpenAPI event socket's path.
const eventSocketPath = openAPIPrefix + "subscribe"

// connResult is how one socket of a stream ended.
type connResult struct {
	up    bool          // the subscription was answered
	lived time.Duration // how long it was up
	stale string        // the token a dial was refused with (HTTP 401/403)
	// renewed: the client holds another token than the socket's (a
	// renewal, here or by another caller): the next socket opens at once.
	renewed bool
	err     error
}

// serveConn runs one socket: token, dial, subscribe, then events until it
// ends. It reports the socket up and down to the consumer; a socket that
// never got its subscription answered was never up.
func (s *EventStream) serveConn(ctx context.Context, d *dispatcher, stale string, reconnect, renewed bool) connResult {
	token, renewAt, err := s.o.socketToken(ctx, stale)
	if err != nil {
		return connResult{err: err}
	}
	ws, status, err := s.dial(ctx, token)
	if err != nil {
		res := connResult{err: err}
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			res.stale = token
		}
		return res
	}
	ws.SetReadLimit(s.cfg.MaxFrameBytes)
	c := &wire.Conn{WS: ws, WriteTimeout: s.o.cfg.RequestTimeout}
	// The stream's end closes the socket, which ends the reads below.
	closed := make(chan struct{})
	stopClosing := context.AfterFunc(ctx, func() {
		defer close(closed)
		c.CloseGracefully()
		ws.Close()
	})
	defer func() {
		if stopClosing() {
			ws.Close()
		} else {
			<-closed
		}
	}()

	if err := s.subscribeConn(c, d); err != nil {
		return connResult{err: err}
	}
	opened := time.Now()
	s.connects.Add(1)
	if renewed {
		s.renewals.Add(1)
	}
	s.log.Info("pbx openapi: event socket up", "topics", len(s.cfg.Topics), "reconnect", reconnect, "renewed", renewed)
	// Heartbeats first: handing the state over may wait for a slow
	// consumer, and the PBX must not see the socket idle meanwhile.
	bg := s.startBackground(ctx, c, token, renewAt)
	d.state(EventStreamState{Up: true, Reconnect: reconnect, Renewed: renewed})
	err = s.readLoop(c, d)
	bg.halt()
	res := connResult{up: true, lived: time.Since(opened), err: err}
	if ctx.Err() != nil {
		res.err = nil
		return res
	}
	// A PBX may close a socket whose token the renewal revoked before the
	// renewal is done: that socket ended for the renewal too.
	res.renewed = bg.renewed.Load() || s.o.heldToken() != token
	if bg.renewed.Load() {
		res.err = ErrEventTokenRenewal
	}
	d.state(EventStreamState{Up: false, Err: res.err})
	return res
}

// socketToken returns the access token to open a socket with, and when to
// replace the socket to renew it: at the token's renewal time, or after a
// failed renewal, when the client will try again.
func (o *Client) socketToken(ctx context.Context, stale string) (string, time.Time, error) {
	tok, err := o.token(ctx, stale)
	if err != nil {
		return "", time.Time{}, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	renewAt := o.cfg.Now().Add(renewRetryDelay)
	if o.tok != nil && o.tok.access == tok {
		renewAt = o.tok.renewAt
		if o.renewRetryAt.After(renewAt) {
			renewAt = o.renewRetryAt
		}
	}
	return tok, renewAt, nil
}

// heldToken returns the access token the client holds now, "" for none.
func (o *Client) heldToken() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tok == nil {
		return ""
	}
	return o.tok.access
}

// dial opens the event socket with token. The handshake is bounded in time
// (RequestTimeout) and size (wire.MaxHandshakeBytes), counts against the
// client's limiter, and carries the User-Agent the OpenAPI requires. The
// error is redacted; status is the HTTP status of a refused upgrade.
func (s *EventStream) dial(ctx context.Context, token string) (*websocket.Conn, int, error) {
	fail := func(status int, err error) (*websocket.Conn, int, error) {
		return nil, status, &pbx.TransportError{Endpoint: eventSocketPath, SDK: pbx.ErrPBXNetwork, Err: s.o.red.Err(err)}
	}
	if l := s.o.cfg.Limiter; l != nil {
		release, err := l.Acquire(ctx)
		if err != nil {
			return fail(0, fmt.Errorf("waiting for the request limiter: %w", err))
		}
		defer release()
	}
	u := url.URL{Scheme: "wss", Host: s.o.origin.Host, Path: eventSocketPath, RawQuery: url.Values{"access_token": {token}}.Encode()}
	var hc *wire.HandshakeConn
	d := websocket.Dialer{
		NetDialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := wire.DialTLS(ctx, s.o.tls, network, addr)
			if err != nil {
				return nil, err
			}
			hc = c
			return c, nil
		},
		HandshakeTimeout: s.o.cfg.RequestTimeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  1024,
		WriteBufferPool:  wire.WriteBuffers,
	}
	ws, resp, err := d.DialContext(ctx, u.String(), http.Header{"User-Agent": {s.o.cfg.UserAgent}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
			err = fmt.Errorf("%w (HTTP %d)", err, status)
		}
		return fail(status, err)
	}
	hc.Open()
	return ws, 0, nil
}

// subscribeConn sends the topic_list and reads until its answer: errcode
// 0, or a refusal. Events that come first are delivered.
func (s *EventStream) subscribeConn(c *wire.Conn, d *dispatcher) error {
	if err := c.Write(s.subscribe); err != nil {
		return fmt.Errorf("pbx openapi event socket: sending the topic_list: %w", s.o.red.Err(err))
	}
	if err := c.WS.SetReadDeadline(time.Now().Add(s.cfg.SubscribeTimeout)); err != nil {
		return err
	}
	for {
		f, err := s.readFrame(c, d)
		switch {
		case wire.IsTimeout(err):
			return fmt.Errorf("%w (%s)", ErrSubscribeTimeout, s.cfg.SubscribeTimeout)
		case err != nil:
			return fmt.Errorf("pbx openapi event socket: awaiting the subscription's answer: %w", err)
		case f.Kind != EventFrameReply:
		case f.ErrCode == 0:
			return nil
		default:
			return &Error{Endpoint: eventSocketPath, HTTPStatus: http.StatusOK, ErrCode: f.ErrCode, ErrMsg: s.o.red.Text(f.ErrMsg), Kind: ErrSubscribeRefused}
		}
	}
}

// readLoop reads frames until the socket fails or goes silent.
func (s *EventStream) readLoop(c *wire.Conn, d *dispatcher) error {
	idle := s.cfg.HeartbeatEvery + s.cfg.PongTimeout
	for {
		if err := c.WS.SetReadDeadline(time.Now().Add(idle)); err != nil {
			return err
		}
		f, err := s.readFrame(c, d)
		switch {
		case wire.IsTimeout(err):
			return fmt.Errorf("%w: nothing for %s", ErrEventSocketSilent, idle)
		case err != nil:
			return fmt.Errorf("pbx openapi event socket: %w", err)
		case f.Kind == EventFrameReply && f.ErrCode != 0:
			if ok, suppressed := s.warns.Allow("event socket errcode", time.Now()); ok {
				s.log.Warn("pbx openapi: event socket sent an error", "errcode", f.ErrCode, "errmsg", s.o.red.Text(f.ErrMsg), "suppressed", suppressed)
			}
		}
	}
}

// readFrame reads and decodes one frame, counts it, and delivers an event;
// a frame that cannot be decoded is dropped (zero EventFrame, nil error).
// The error is the socket's, redacted.
func (s *EventStream) readFrame(c *wire.Conn, d *dispatcher) (EventFrame, error) {
	mt, data, err := c.WS.ReadMessage()
	if err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			s.drop(pbx.DropTooLarge, fmt.Errorf("frame over %d bytes", s.cfg.MaxFrameBytes), nil)
		}
		return EventFrame{}, s.o.red.Err(err)
	}
	s.frames.Add(1)
	if mt != websocket.TextMessage {
		s.drop(pbx.DropNotJSON, errors.New("binary frame"), nil)
		return EventFrame{}, nil
	}
	f, err := DecodeEventFrame(data)
	if err != nil {
		var de *EventDecodeError
		reason := pbx.DropNotJSON
		if errors.As(err, &de) {
			reason = de.Reason
		}
		s.drop(reason, err, data)
		return EventFrame{}, nil
	}
	switch f.Kind {
	case EventFrameHeartbeat:
		s.pongs.Add(1)
	case EventFrameEvent:
		s.memberDrops(f.Event)
		d.event(f.Event)
	}
	return f, nil
}

// memberDrops counts the members of a call event that could not be read.
func (s *EventStream) memberDrops(ev *Event) {
	var errs []*MemberError
	switch data := ev.Data.(type) {
	case *CallState:
		errs = data.MemberErrors
	case *CallFailed:
		errs = data.MemberErrors
	}
	for _, e := range errs {
		s.drop(DropBadMember, fmt.Errorf("event %d: %w", ev.Type, e), nil)
	}
}

// connBackground is what runs beside a socket's reader: the heartbeat and
// the token renewal.
type connBackground struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	renewed atomic.Bool // the renewal closed the socket
}

func (s *EventStream) startBackground(parent context.Context, c *wire.Conn, token string, renewAt time.Time) *connBackground {
	ctx, cancel := context.WithCancel(parent)
	bg := &connBackground{cancel: cancel}
	bg.wg.Add(2)
	go func() {
		defer bg.wg.Done()
		s.keepalive(ctx, c)
	}()
	go func() {
		defer bg.wg.Done()
		s.renewToken(ctx, parent, c, token, renewAt, &bg.renewed)
	}()
	return bg
}

// halt stops the background and waits for it: nothing touches the socket
// afterwards.
func (bg *connBackground) halt() {
	bg.cancel()
	bg.wg.Wait()
}

// keepalive sends "heartbeat" every HeartbeatEvery; a failed write closes
// the socket, which ends the reader.
func (s *EventStream) keepalive(ctx context.Context, c *wire.Conn) {
	t := time.NewTicker(s.cfg.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.Write(wire.HeartbeatFrame); err != nil {
			c.WS.Close()
			return
		}
		s.heartbeats.Add(1)
	}
}

// renewToken waits until the token is due for renewal, renews it, and
// closes the socket (gracefully) once a new token is there, so that the
// next one opens with it. While renewal fails, the socket stays and the
// renewal is tried again when the client allows. A renewal under way
// finishes (with the stream's context, not the socket's) even when the
// socket ends meanwhile: a PBX may close the socket as soon as the renewal
// revokes its token, and the next socket needs the new one.
func (s *EventStream) renewToken(ctx, stream context.Context, c *wire.Conn, token string, renewAt time.Time, renewed *atomic.Bool) {
	for {
		t := time.NewTimer(max(0, renewAt.Sub(s.o.cfg.Now())))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		tok, next, err := s.o.socketToken(stream, "")
		if stream.Err() != nil {
			return
		}
		if err == nil && tok != token {
			renewed.Store(true)
			c.CloseGracefully()
			c.WS.Close()
			return
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Info("pbx openapi: renewing the event socket's token failed; keeping the socket", "err", err)
			next = s.o.cfg.Now().Add(renewRetryDelay)
		}
		// Never sooner than a second: a clock that does not move (a
		// test's) must not make this spin.
		renewAt = maxTime(next, s.o.cfg.Now().Add(time.Second))
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
