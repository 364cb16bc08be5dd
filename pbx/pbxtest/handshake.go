package pbxtest

import (
	"bytes"
	"net/http"
)

// fillerChunk is what endlessHandshake writes at a time.
var fillerChunk = bytes.Repeat([]byte("a"), 32<<10)

// endlessHandshake takes the connection over and answers an upgrade with a
// status line and a header that never ends, until a write fails (the client
// went away) or the server closes. The caller holds sockWG for it.
func (s *Server) endlessHandshake(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	// Close ends a write blocked on a client that stopped reading: a write
	// deadline would leave the TLS connection unusable for the next chunk.
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-s.done:
		case <-stop:
		}
		_ = conn.Close()
	}()
	defer func() { close(stop); <-watched }()

	s.log.Debug("pbxtest: endless handshake")
	if _, err := conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Filler: ")); err != nil {
		return
	}
	for {
		if _, err := conn.Write(fillerChunk); err != nil {
			return
		}
	}
}
