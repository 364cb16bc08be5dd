package wire

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// HeartbeatFrame is what a client sends to keep a socket alive; the PBX
// answers HeartbeatResponse, on both of its sockets.
var HeartbeatFrame = []byte("heartbeat")

// HeartbeatResponse is the PBX's answer to HeartbeatFrame.
const HeartbeatResponse = "heartbeat response"

// Conn is one socket's write side: gorilla allows one writer at a time, and
// both the reader (topic lists) and the heartbeat write.
type Conn struct {
	WS           *websocket.Conn
	WriteTimeout time.Duration
	mu           sync.Mutex
}

// Write sends a text frame, bounded by WriteTimeout.
func (c *Conn) Write(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.WS.SetWriteDeadline(time.Now().Add(c.WriteTimeout)); err != nil {
		return err
	}
	return c.WS.WriteMessage(websocket.TextMessage, frame)
}

// CloseGracefully sends a close frame (best effort, bounded) before the
// socket is closed, when its owner itself ends.
func (c *Conn) CloseGracefully() {
	deadline := time.Now().Add(min(c.WriteTimeout, time.Second))
	_ = c.WS.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
}

// WriteBuffers is shared by every socket (gorilla's Dialer.WriteBufferPool):
// a write buffer is held only while a frame is written.
var WriteBuffers = &sync.Pool{}

// IsTimeout reports whether err is a network timeout (a read deadline
// that passed).
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
