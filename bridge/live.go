package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/bridge/fleet"
	"github.com/pbx-bridge/pbx-bridge/bridge/kvkey"
	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// Live calls: the PBX's OpenAPI event socket (one per PBX, not per
// extension), its frames turned into events by bridge/livecall's tracker,
// published to the signals stream, and the tracker's state saved after
// each publish (publish first: a crash between the two republishes an
// event with the same id, which the stream's duplicate window drops).

// EventsConfig configures the live call events.
type EventsConfig struct {
	Enabled bool
	// Topics are the event types subscribed to (default: every one the
	// bridge maps, LiveTopics).
	Topics []int
}

// LiveTopics are the OpenAPI event types the bridge maps to events.
var LiveTopics = []int{
	int(openapi.EventRegistration), int(openapi.EventExtensionCallStatus), int(openapi.EventPresence),
	int(openapi.EventCallState), int(openapi.EventNewCDR), int(openapi.EventCallFailed),
	int(openapi.EventSystemInfo), int(openapi.EventSystemWarning), int(openapi.EventSystemAlert),
}

// validateEvents checks the events and call control keys.
func (c *Config) validateEvents() []error {
	var errs []error
	minting := c.OpenAPI.AccessID != ""
	if c.Events.Enabled && !minting {
		errs = append(errs, errors.New("events.enabled: needs pbx.openapi.access_id and access_key: the event socket is the OpenAPI's"))
	}
	if c.AllowCallControl && !minting {
		errs = append(errs, errors.New("requests.allow_call_control: needs pbx.openapi.access_id and access_key: call control is the OpenAPI's"))
	}
	for i, t := range c.Events.Topics {
		if !slices.Contains(LiveTopics, t) {
			errs = append(errs, fmt.Errorf("events.topics[%d]: %d is not an event type the bridge maps (%v)", i, t, LiveTopics))
		}
	}
	return errs
}

// liveKey is the tracker's state in the cursor bucket (no TTL: a call may
// be held longer than any lease).
func liveKey(host string) string { return "live." + kvkey.Host(host) }

// newLive makes the tracker (Events.Enabled) and the call controller
// (AllowCallControl), which finds channels through the tracker when there
// is one.
func (b *Bridge) newLive() error {
	var err error
	// In a fleet the tracker is the OpenAPI leader's, one per leadership
	// (leadLive); call control, on whichever replica owns the extension,
	// finds channels through call/query.
	if b.cfg.Events.Enabled && !b.cfg.Fleet.Enabled {
		b.tracker, err = livecall.NewTracker(livecall.Config{PBX: b.host, Served: b.set.wanted, Now: b.cfg.now})
		if err != nil {
			return fmt.Errorf("live calls: %w", err)
		}
	}
	if b.cfg.AllowCallControl {
		b.control, err = livecall.NewController(livecall.ControllerConfig{API: callAPI{b}, Served: b.set.wanted, Tracker: b.tracker})
		if err != nil {
			return fmt.Errorf("call control: %w", err)
		}
	}
	return nil
}

// runLive runs the event socket of api until ctx ends, reconnecting, and
// feeds tr with its frames. On a lone bridge api is the bridge's OpenAPI
// client and tr the tracker call control reads; in a fleet the OpenAPI
// leader runs it with a client of its own (leadLive).
func (b *Bridge) runLive(ctx context.Context, api *openapi.Client, tr *livecall.Tracker) {
	l := &liveRun{b: b, api: api, tr: tr, saved: make(chan struct{}, 1), q: newLiveQueue(liveQueueMax)}
	if kv := b.liveStore(ctx); kv != nil {
		l.store = newLiveState(kv, liveKey(b.host), b.nc.MaxPayload())
		l.resume(ctx)
	}
	topics := b.cfg.Events.Topics
	if len(topics) == 0 {
		topics = LiveTopics
	}
	types := make([]openapi.EventType, len(topics))
	for i, t := range topics {
		types[i] = openapi.EventType(t)
	}
	stream, err := api.NewEventStream(openapi.EventStreamConfig{
		Topics: types,
		OnEvent: func(ev *openapi.Event) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.queue(tr.Observe(ev))
		},
		OnState: func(st openapi.EventStreamState) { l.state(ctx, st) },
		// Each event dropped for slowness is counted once, by OnDrop
		// (reason overflow); OnLost only says how many, before the next.
		OnLost: func(n int) {
			b.cfg.Logger.Warn("live calls: events dropped, the bridge was too slow", "dropped", n)
		},
		OnDrop: func(r pbx.DropReason) { b.metrics.liveDropped(string(r), 1) },
	})
	if err != nil {
		b.cfg.Logger.Error("live calls: no event stream", "err", err)
		return
	}
	b.metrics.liveHeld(true)
	defer b.metrics.liveHeld(false)
	// The publisher outlives ctx by up to liveFlushTimeout, to publish what
	// was queued before the stream stopped; the saver saves after it.
	pctx, stopPublishing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPublishing()
	var publisher, saver sync.WaitGroup
	publisher.Go(func() { l.publishLoop(pctx) })
	saver.Go(func() { l.saveLoop(ctx) })
	if err := stream.Run(ctx); err != nil && ctx.Err() == nil {
		b.cfg.Logger.Error("live calls: the event stream ended", "err", err)
	}
	l.q.close()
	flush := time.AfterFunc(liveFlushTimeout, stopPublishing)
	publisher.Wait()
	flush.Stop()
	saver.Wait()
}

// resume starts the tracker from the saved state and the call events
// published after it (replayLive); without a saved state, from the events
// of the last liveReplayFresh (within the stream's duplicate window: older
// ids are not dropped anyway). Either way the first connection then
// reconciles with the PBX.
func (l *liveRun) resume(ctx context.Context) {
	b := l.b
	since := time.Now().Add(-min(b.cfg.JetStream.DuplicateWindow, liveReplayFresh))
	data, at, err := l.store.load(ctx)
	switch {
	case err != nil:
		b.cfg.Logger.Warn("live calls: the saved state could not be read; starting afresh", "err", err)
	case data != nil:
		if err := l.tr.Import(data); err != nil {
			b.cfg.Logger.Warn("live calls: the saved state is unreadable; starting afresh", "err", err)
		} else {
			l.stale, since = true, at.Add(-liveReplayMargin)
		}
	}
	moved, err := b.replayLive(ctx, l.tr, since)
	if err != nil {
		b.cfg.Logger.Warn("live calls: the events published since the saved state could not all be read; a transition may be numbered twice", "err", err)
	}
	if moved > 0 {
		l.stale = true
		b.cfg.Logger.Info("live calls: took in the call events published after the saved state", "events", moved)
	}
}

// leadLive is the event socket as the fleet's OpenAPI leader holds it,
// until ctx ends (the leadership ended or was fenced). It has its own
// OpenAPI client, whose one token lives as long as the socket and is
// revoked at the end (the fleet's token lock revokes its token after each
// use, which would close the socket), and a tracker that starts from the
// state the previous holder saved: the events it derives carry the ids
// the previous holder's would have, so a replay is dropped by the
// stream's duplicate window.
func (b *Bridge) leadLive(ctx context.Context) {
	api, err := b.newOpenAPI()
	if err == nil {
		var tr *livecall.Tracker
		if tr, err = livecall.NewTracker(livecall.Config{PBX: b.host, Served: b.set.wanted, Now: b.cfg.now}); err == nil {
			b.liveAPI.Store(api)
			b.runLive(ctx, api, tr)
			b.liveAPI.Store(nil)
		}
		rctx, cancel := context.WithTimeout(context.Background(), fleet.RevokeTimeout)
		if cerr := api.Close(rctx); cerr != nil {
			b.cfg.Logger.Warn("live calls: the event socket's OpenAPI token was not revoked", "err", cerr)
		}
		cancel()
	}
	if err != nil {
		b.cfg.Logger.Error("live calls: no event stream", "err", err)
	}
}

// liveStore is the cursor bucket, where the tracker's state lives (nil
// without JetStream: the state lives as long as the process).
func (b *Bridge) liveStore(ctx context.Context) jetstream.KeyValue {
	if b.js == nil {
		return nil
	}
	kv, err := b.js.KeyValue(ctx, b.cfg.JetStream.CursorBucket)
	if err != nil {
		b.cfg.Logger.Warn("live calls: the cursor bucket is not reachable; the state is not saved", "err", err)
		return nil
	}
	return kv
}

func (l *liveRun) outEvent(e livecall.Event) (outEvent, error) {
	env, err := e.CloudEvent("pbx-bridge://" + l.b.host)
	if err != nil {
		return outEvent{}, err
	}
	body, err := schema.Marshal(env)
	if err != nil {
		return outEvent{}, err
	}
	return outEvent{subject: e.Subject(l.b.cfg.Prefix), id: e.ID, typ: e.Type, body: body}, nil
}

// state reconciles the tracker after a gap, and after a start from a saved
// state: the calls that ended while the socket was away end now (cause
// gap). It asks the socket's own client, not the fleet's token lock.
func (l *liveRun) state(ctx context.Context, st openapi.EventStreamState) {
	if !st.Up {
		l.b.cfg.Logger.Info("live calls: the event socket is down", "err", st.Err)
		return
	}
	l.b.cfg.Logger.Info("live calls: the event socket is up", "reconnect", st.Reconnect)
	if !st.Reconnect && !l.stale {
		return
	}
	l.stale = false
	asOf := l.b.cfg.now()
	var live []openapi.CallState
	for _, typ := range []string{"inbound", "outbound", "internal"} {
		qctx, cancel := context.WithTimeout(ctx, l.b.cfg.RequestTimeout)
		calls, err := l.api.QueryCalls(qctx, openapi.CallQuery{Type: typ})
		cancel()
		if err != nil {
			l.b.cfg.Logger.Warn("live calls: the live calls could not be read after a gap; the tracker waits for the next frames", "err", err)
			return
		}
		live = append(live, calls...)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queue(l.tr.Reconcile(live, asOf))
}
