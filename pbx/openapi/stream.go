package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/sample"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

// Defaults of EventStreamConfig's zero fields.
const (
	DefaultEventStreamBuffer = 1024
	// DefaultSubscribeTimeout bounds the wait for the answer to topic_list.
	DefaultSubscribeTimeout = 10 * time.Second
	// DefaultEventHeartbeatEvery is how often "heartbeat" is sent: the PBX
	// closes a socket after 60 s without traffic, and documents no period
	// (the reference suggests 30-50 s).
	DefaultEventHeartbeatEvery = 30 * time.Second
	// DefaultEventPongTimeout is how long past a heartbeat period a socket
	// may stay silent before it is taken for dead.
	DefaultEventPongTimeout = 15 * time.Second
	// DefaultEventMaxFrameBytes bounds one frame: a 30011 of a large
	// conference is a few KiB.
	DefaultEventMaxFrameBytes = 1 << 20
	DefaultEventReconnectMin  = time.Second
	DefaultEventReconnectMax  = time.Minute
)

// Errors of the event stream.
var (
	// ErrSubscribeTimeout: the PBX did not answer the topic_list within
	// SubscribeTimeout.
	ErrSubscribeTimeout = errors.New("pbx: the PBX did not answer the event subscription in time")
	// ErrSubscribeRefused is wrapped by the *Error of a topic_list
	// answered with a non-zero errcode.
	ErrSubscribeRefused = errors.New("pbx: the PBX refused the event subscription")
	// ErrEventSocketSilent: nothing arrived for HeartbeatEvery+PongTimeout,
	// heartbeats unanswered included.
	ErrEventSocketSilent = errors.New("pbx: the event socket went silent")
	// ErrEventTokenRenewal: the socket was closed to open another one with
	// a renewed access token.
	ErrEventTokenRenewal = errors.New("pbx: event socket closed to renew the access token")
	// ErrEventStreamRunning: Run or Serve was called while the stream was
	// already running.
	ErrEventStreamRunning = errors.New("pbx: the event stream is already running")
)

// EventStreamConfig configures an EventStream. Zero fields take the
// defaults.
type EventStreamConfig struct {
	// Topics is the topic_list: the event types to receive. Required.
	Topics []EventType
	// OnEvent receives every decoded event, in the order the PBX sent
	// them, on one goroutine of the stream's. It must return: while it
	// runs, up to Buffer events wait, and more are dropped (see OnLost).
	// Required.
	OnEvent func(*Event)
	// OnState, if set, receives the socket's state changes, in order with
	// the events: Up once a subscription is answered, down when the socket
	// ends. Every down, and every up with Reconnect, is a gap: events may
	// have been lost.
	OnState func(EventStreamState)
	// OnLost, if set, is called on OnEvent's goroutine, before the next
	// event, with how many events were dropped because OnEvent was too
	// slow.
	OnLost func(n int)
	// OnDrop, if set, is called for every frame (or call member) that
	// could not be decoded, with why; it must not block. Stats counts them
	// too.
	OnDrop func(reason pbx.DropReason)

	// Buffer is how many decoded events may wait for OnEvent. Default
	// DefaultEventStreamBuffer.
	Buffer int
	// SubscribeTimeout, HeartbeatEvery and PongTimeout are as their
	// defaults say.
	SubscribeTimeout time.Duration
	HeartbeatEvery   time.Duration
	PongTimeout      time.Duration
	// MaxFrameBytes bounds a frame; a larger one closes the socket (which
	// Run reconnects). Default DefaultEventMaxFrameBytes.
	MaxFrameBytes int64
	// ReconnectMin and ReconnectMax bound Run's reconnect delays:
	// exponential from ReconnectMin, jittered, at most ReconnectMax.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
}

// EventStreamState is a state change of an EventStream's socket.
type EventStreamState struct {
	Up bool
	// Reconnect is set on an up that follows an earlier socket of the
	// same Run: events between the two may be lost.
	Reconnect bool
	// Renewed is set on an up whose socket replaced one closed to renew
	// the access token (ErrEventTokenRenewal).
	Renewed bool
	// Err is why the socket ended, on a down. It never holds a token.
	Err error
}

// EventStreamStats are an EventStream's counters since it was made.
type EventStreamStats struct {
	Connects   uint64 // subscriptions answered
	Renewals   uint64 // sockets opened to renew the access token
	Frames     uint64 // frames read
	Events     uint64 // events handed to OnEvent
	Heartbeats uint64 // heartbeats sent
	Pongs      uint64 // "heartbeat response" frames read
	// Dropped counts what was dropped, by reason: undecodable frames,
	// unreadable call members (DropBadMember), frames over MaxFrameBytes
	// and events OnEvent was too slow for (pbx.DropOverflow).
	Dropped map[pbx.DropReason]uint64
}

// EventStream receives the PBX's OpenAPI events over its event socket
// (shared/reference/openapi-events.md): it opens
// wss://<pbx>/openapi/v1.0/subscribe with the client's access token, sends
// the topic_list and waits for its answer, sends "heartbeat" every
// HeartbeatEvery, and takes a socket silent for HeartbeatEvery+PongTimeout
// for dead. Make one with Client.NewEventStream; run it with Run (which
// reconnects) or Serve (one socket).
//
// The access token is the client's shared one. Before it is due for
// renewal (80% of its lifetime), the stream renews it and replaces the
// socket with one opened with the new token, since the reference leaves
// open whether the PBX keeps a socket whose token ended. The token travels
// in the socket URL's query; it is never logged nor put into an error.
//
// Nothing from the PBX can crash or wedge the stream: frames are bounded
// in size, undecodable ones are counted and dropped (sampled warnings),
// and at most Buffer decoded events wait for OnEvent.
type EventStream struct {
	o         *Client
	cfg       EventStreamConfig
	subscribe []byte // the topic_list frame
	log       *slog.Logger
	warns     sample.Warnings
	running   atomic.Bool

	connects, renewals, frames, events, heartbeats, pongs atomic.Uint64

	dropMu  sync.Mutex
	dropped map[pbx.DropReason]uint64
}

// NewEventStream validates cfg and returns a stream, not yet running.
func (o *Client) NewEventStream(cfg EventStreamConfig) (*EventStream, error) {
	if len(cfg.Topics) == 0 || cfg.OnEvent == nil {
		return nil, fmt.Errorf("%w: an event stream needs Topics and OnEvent", pbx.ErrInvalidConfig)
	}
	seen := map[EventType]bool{}
	for _, t := range cfg.Topics {
		if t <= 0 || seen[t] {
			return nil, fmt.Errorf("%w: event stream topic %d is not positive or given twice", pbx.ErrInvalidConfig, t)
		}
		seen[t] = true
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"SubscribeTimeout", &cfg.SubscribeTimeout, DefaultSubscribeTimeout},
		{"HeartbeatEvery", &cfg.HeartbeatEvery, DefaultEventHeartbeatEvery},
		{"PongTimeout", &cfg.PongTimeout, DefaultEventPongTimeout},
		{"ReconnectMin", &cfg.ReconnectMin, DefaultEventReconnectMin},
		{"ReconnectMax", &cfg.ReconnectMax, DefaultEventReconnectMax},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("%w: event stream %s is negative", pbx.ErrInvalidConfig, d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.Buffer < 0 || cfg.MaxFrameBytes < 0 {
		return nil, fmt.Errorf("%w: event stream Buffer or MaxFrameBytes is negative", pbx.ErrInvalidConfig)
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = DefaultEventStreamBuffer
	}
	if cfg.MaxFrameBytes == 0 {
		cfg.MaxFrameBytes = DefaultEventMaxFrameBytes
	}
	cfg.ReconnectMax = max(cfg.ReconnectMax, cfg.ReconnectMin)
	frame, err := json.Marshal(struct {
		TopicList []EventType `json:"topic_list"`
	}{cfg.Topics})
	if err != nil {
		return nil, err
	}
	return &EventStream{o: o, cfg: cfg, subscribe: frame, log: o.log, dropped: map[pbx.DropReason]uint64{}}, nil
}

// Stats returns the stream's counters.
func (s *EventStream) Stats() EventStreamStats {
	s.dropMu.Lock()
	dropped := maps.Clone(s.dropped)
	s.dropMu.Unlock()
	return EventStreamStats{
		Connects: s.connects.Load(), Renewals: s.renewals.Load(), Frames: s.frames.Load(), Events: s.events.Load(),
		Heartbeats: s.heartbeats.Load(), Pongs: s.pongs.Load(), Dropped: dropped,
	}
}

// Run keeps the stream's socket up until ctx ends: it opens a socket and
// serves it as Serve does, and after the socket ends opens another, with
// the current token and the topic_list again, after a delay (exponential
// from ReconnectMin to ReconnectMax; none after a token renewal). A dial
// refused with HTTP 401 or 403 renews the token before the next one. It
// returns nil when ctx ends, and ErrClosed when the client's Close
// ends it; OnEvent and OnState are not called after it returns.
func (s *EventStream) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrEventStreamRunning
	}
	defer s.running.Store(false)
	ctx, cancel := s.withClient(ctx)
	defer cancel()
	d := s.startDispatch(ctx)
	defer d.stop()
	delays := wire.NewReconnectDelays(s.cfg.ReconnectMin, s.cfg.ReconnectMax)
	var (
		res              connResult
		wasUp, renewing  bool
		stale            string
		lastDialRefusals int
	)
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !renewing && !s.sleep(ctx, delays.Next()) {
			return s.endErr()
		}
		res = s.serveConn(ctx, d, stale, wasUp, renewing)
		if ctx.Err() != nil || errors.Is(res.err, ErrClosed) {
			return s.endErr()
		}
		stale, renewing = res.stale, res.renewed
		if res.up {
			wasUp = true
			if res.lived >= s.cfg.ReconnectMin {
				delays.Reset()
			}
		}
		if res.stale != "" {
			lastDialRefusals++
		} else {
			lastDialRefusals = 0
		}
		s.logEnd(res, lastDialRefusals)
	}
}

// logEnd logs why a socket ended: a renewal at Info, the rest sampled.
func (s *EventStream) logEnd(res connResult, refusals int) {
	if errors.Is(res.err, ErrEventTokenRenewal) {
		s.log.Info("pbx openapi: event socket replaced to renew the access token")
		return
	}
	if ok, suppressed := s.warns.Allow("event socket ended", time.Now()); ok {
		s.log.Warn("pbx openapi: event socket ended, reconnecting", "err", res.err, "was_up", res.up,
			"token_refusals", refusals, "suppressed", suppressed)
	}
}

// Serve opens one socket, subscribes, and delivers its events until it
// ends; it returns why (a *pbx.TransportError for a dial that failed,
// ErrSubscribeTimeout, an *Error wrapping ErrSubscribeRefused,
// ErrEventSocketSilent, ErrEventTokenRenewal when the token is due for
// renewal, ...), or nil when ctx ends. The caller reconnects by calling it
// again; Run does all of that.
func (s *EventStream) Serve(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrEventStreamRunning
	}
	defer s.running.Store(false)
	ctx, cancel := s.withClient(ctx)
	defer cancel()
	d := s.startDispatch(ctx)
	defer d.stop()
	res := s.serveConn(ctx, d, "", false, false)
	if ctx.Err() != nil {
		return s.endErr()
	}
	return res.err
}

// withClient returns ctx ended also by the client's Close, which revokes
// the token the socket was opened with.
func (s *EventStream) withClient(ctx context.Context) (context.Context, context.CancelFunc) {
	return s.o.closing.Bind(ctx)
}

// endErr is what Run and Serve return once their context ended: nil, or
// ErrClosed if the client's Close ended it.
func (s *EventStream) endErr() error {
	if s.o.closing.Fired() {
		return ErrClosed
	}
	return nil
}

// sleep waits d or until ctx ends; false if ctx ended.
func (s *EventStream) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// drop counts and reports something dropped; the warning is sampled per
// reason and shows no content but, for a frame that is not JSON, a short
// redacted prefix.
func (s *EventStream) drop(reason pbx.DropReason, err error, data []byte) {
	s.dropMu.Lock()
	s.dropped[reason]++
	s.dropMu.Unlock()
	if s.cfg.OnDrop != nil {
		s.cfg.OnDrop(reason)
	}
	if reason == pbx.DropOverflow {
		return // counted per event; OnLost says how many
	}
	ok, suppressed := s.warns.Allow("event dropped: "+string(reason), time.Now())
	if !ok {
		return
	}
	attrs := []any{"reason", reason, "err", err, "suppressed", suppressed}
	if reason == pbx.DropNotJSON && data != nil {
		attrs = append(attrs, "len", len(data), "prefix", s.o.red.FramePrefix(data))
	}
	s.log.Warn("pbx openapi: event dropped", attrs...)
}
