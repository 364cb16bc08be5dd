package pbx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

// subscribePath is the subscribe socket's path.
const subscribePath = apiPrefix + "subscribe"

// dial opens the subscribe socket. The handshake is bounded in time
// (RequestTimeout) and in size (wire.MaxHandshakeBytes). The returned error is
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
	var hc *wire.HandshakeConn
	d := websocket.Dialer{
		NetDialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := wire.DialTLS(ctx, s.client.tls, network, addr)
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
		WriteBufferPool: wire.WriteBuffers,
	}
	ws, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
			err = fmt.Errorf("%w (HTTP %d)", err, status)
		}
		return nil, status, fmt.Errorf("pbx %s: %w", subscribePath, s.client.red.Err(err))
	}
	hc.Open()
	return ws, 0, nil
}

// serve runs one open socket: it subscribes, reports it up, and reads
// frames until the socket closes (closeErr), a notification raises a runtime
// error (fatal), or ctx ends. up reports whether the topic list went out.
func (s *Session) serve(ctx context.Context, ws *websocket.Conn, reconnect bool) (up bool, fatal, closeErr error) {
	ws.SetReadLimit(s.cfg.MaxFrameBytes)
	c := &wire.Conn{WS: ws, WriteTimeout: s.cfg.RequestTimeout}
	// The topic list is the first frame, before the heartbeat goroutine
	// exists: started first, it could send a "heartbeat" ahead of it (a
	// reader delayed PingAfter on a loaded machine is enough), which the PBX
	// refuses before a topic list. The write is bounded by writeTimeout and
	// goes to a fresh socket's empty buffer.
	if err := s.subscribe(c); err != nil {
		ws.Close()
		return false, nil, err
	}
	hb := newHeartbeat(&s.cfg, time.Now())
	hb.start(c)
	stop := closeOnEnd(ctx, c)
	defer stop(hb)
	s.socketUp(ctx, hb, reconnect)
	fatal, closeErr = s.readFrames(ctx, c, hb)
	return true, fatal, closeErr
}

// closeOnEnd makes the session's end close the socket (with a close
// frame), which ends its read: a callback on the context, not a goroutine
// waiting for it. The function returned closes the socket and stops hb
// when the socket is done with, waiting for that callback if it runs.
func closeOnEnd(ctx context.Context, c *wire.Conn) func(hb *heartbeat) {
	closed := make(chan struct{})
	stopClosing := context.AfterFunc(ctx, func() {
		defer close(closed)
		c.CloseGracefully()
		c.WS.Close()
	})
	return func(hb *heartbeat) {
		if stopClosing() {
			c.WS.Close()
		} else {
			<-closed
		}
		hb.stop()
	}
}

// socketUp announces a socket that is subscribed.
func (s *Session) socketUp(ctx context.Context, hb *heartbeat, reconnect bool) {
	s.log.Info("pbx socket up", "reconnect", reconnect, "topics", len(s.topics))
	s.deliver(ctx, hb, &SocketState{Up: true, Reconnect: reconnect})
}

// readFrames reads and handles frames until the socket closes (closeErr)
// or a notification raises a runtime error (fatal).
func (s *Session) readFrames(ctx context.Context, c *wire.Conn, hb *heartbeat) (fatal, closeErr error) {
	for {
		mt, data, err := c.WS.ReadMessage()
		if err != nil {
			return nil, s.readFailed(hb, err)
		}
		if fatal, closeErr = s.frame(ctx, c, hb, mt, data); fatal != nil || closeErr != nil {
			return fatal, closeErr
		}
	}
}

// readFailed is why a read ended the socket.
func (s *Session) readFailed(hb *heartbeat, err error) error {
	if errors.Is(err, websocket.ErrReadLimit) {
		s.dropFrame(DropTooLarge, Frame{}, nil)
	}
	if hb.timedOut() {
		err = ErrHeartbeatTimeout
	}
	return fmt.Errorf("pbx socket: %w", s.client.red.Err(err))
}

// frame handles one frame read of type mt; a runtime error it raises is
// fatal, a failed resubscription closes the socket (closeErr).
func (s *Session) frame(ctx context.Context, c *wire.Conn, hb *heartbeat, mt int, data []byte) (fatal, closeErr error) {
	f, reason := Frame{}, DropNotJSON // a binary frame is no text, let alone JSON
	if mt == websocket.TextMessage {
		f, reason = DecodeFrame(data)
	}
	hb.arrived(time.Now(), f.Kind == FrameHeartbeat)
	if reason != "" {
		s.dropFrame(reason, f, data)
		return nil, nil
	}
	if len(f.Problems) > 0 {
		s.client.reportProblems("socket:"+strconv.Itoa(f.Type), f.Problems)
	}
	switch f.Kind {
	case FrameResubscribe:
		s.log.Info("pbx asked to subscribe again (errcode -3)")
		return nil, s.resubscribe(ctx, hb, c)
	case FrameNotification:
		if f.Type == TypeHotStandby {
			// Subscribe before delivering the notice: a slow consumer
			// must not delay it. The standby may run another firmware:
			// its product is read again before the next socket or login.
			s.client.unreachable()
			s.log.Info("pbx hot-standby switch-over: subscribing again")
			if err := s.resubscribe(ctx, hb, c); err != nil {
				return nil, err
			}
		}
		rt := s.rules.check(f)
		s.deliver(ctx, hb, f.Event)
		if rt != nil {
			return rt, nil
		}
	}
	return nil, nil
}

// resubscribe sends the topic list again on an open socket and reports the
// gap: whatever the PBX asked it for (errcode -3, a 20104 switch-over), the
// notifications before it may be lost.
func (s *Session) resubscribe(ctx context.Context, hb *heartbeat, c *wire.Conn) error {
	if err := s.subscribe(c); err != nil {
		return err
	}
	s.deliver(ctx, hb, &SocketState{Up: true, Reconnect: true, Resubscribed: true})
	return nil
}

// subscribe sends the topic list.
func (s *Session) subscribe(c *wire.Conn) error {
	frame, err := json.Marshal(struct {
		TopicList []int `json:"topic_list"`
	}{s.topics})
	if err != nil {
		return err
	}
	if err := c.Write(frame); err != nil {
		return fmt.Errorf("pbx socket: sending the topic list: %w", s.client.red.Err(err))
	}
	return nil
}

// dropFrame counts and logs a dropped frame. The log shows a short, redacted
// prefix of a frame that is not JSON, and nothing of the others' content.
// The count (Hooks.FrameDropped) is exact; the warnings are sampled per
// reason (sample.Warnings), so a flood of garbage gives a handful of lines.
func (s *Session) dropFrame(reason DropReason, f Frame, data []byte) {
	if s.cfg.Hooks.FrameDropped != nil {
		s.cfg.Hooks.FrameDropped(string(reason))
	}
	if reason == DropErrcode2 {
		s.log.Debug("pbx frame dropped", "reason", reason, "type", f.Type)
		return
	}
	ok, suppressed := s.client.warns.Allow("frame dropped: "+string(reason), time.Now())
	if !ok {
		return
	}
	attrs := []any{"reason", reason}
	switch reason {
	case DropNotJSON:
		attrs = append(attrs, "len", len(data), "prefix", s.client.red.FramePrefix(data))
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
