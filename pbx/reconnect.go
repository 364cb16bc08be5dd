package pbx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

// The subscribe socket's life across reconnects: keepSocket, its delays and
// the token probe. socket.go runs one open socket.

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
	k := socketRetries{delays: wire.NewReconnectDelays(s.cfg.ReconnectMin, s.cfg.ReconnectMax)}
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !s.awaitReconnect(ctx, k.delays, attempt) {
			return nil
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
			probe = s.dialFailed(&k, err, status)
		} else {
			opened := time.Now()
			up, fatal, closeErr := s.serve(ctx, ws, k.wasUp)
			if fatal != nil {
				return fatal
			}
			if ctx.Err() != nil {
				return nil
			}
			s.socketLost(ctx, &k, up, opened, closeErr)
		}
		if probe || k.shortFailures >= 2 {
			k.shortFailures = 0
			if err := s.probeToken(ctx); err != nil {
				return err
			}
		}
	}
}

// socketRetries is keepSocket's state between attempts.
type socketRetries struct {
	delays        *wire.ReconnectDelays
	wasUp         bool // a socket of this session was up before
	shortFailures int  // failed dials and short-lived sockets in a row
}

// awaitReconnect waits the next reconnect delay (false: ctx ended first)
// and prepares the attempt.
func (s *Session) awaitReconnect(ctx context.Context, delays *wire.ReconnectDelays, attempt int) bool {
	t := time.NewTimer(delays.Next())
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
	}
	if s.cfg.Hooks.Reconnect != nil {
		s.cfg.Hooks.Reconnect()
	}
	s.log.Debug("pbx socket reconnecting", "attempt", attempt)
	s.refreshProduct(ctx)
	return true
}

// dialFailed records a failed dial; it reports whether the refusal calls
// for a token probe at once.
func (s *Session) dialFailed(k *socketRetries, err error, status int) (probe bool) {
	s.log.Warn("pbx socket dial failed", "err", err, "http_status", status)
	k.shortFailures++
	if status == 0 {
		s.client.unreachable()
	}
	return status == http.StatusUnauthorized || status == http.StatusForbidden
}

// socketLost records a socket that closed (up: it was subscribed, at
// opened) and tells the consumer if it was up.
func (s *Session) socketLost(ctx context.Context, k *socketRetries, up bool, opened time.Time, closeErr error) {
	// A lost socket may be a PBX restarting, perhaps into another
	// firmware.
	s.client.unreachable()
	if up {
		k.wasUp = true
		s.log.Warn("pbx socket down", "err", closeErr)
		s.deliver(ctx, nil, &SocketState{Up: false, Err: closeErr})
	} else {
		s.log.Warn("pbx socket failed before it was up", "err", closeErr)
	}
	if up && time.Since(opened) >= s.cfg.ReconnectMin {
		k.shortFailures = 0
		k.delays.Reset()
	} else {
		k.shortFailures++
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
