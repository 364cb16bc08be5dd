package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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
	l := &liveRun{b: b, api: api, tr: tr, saved: make(chan struct{}, 1)}
	if kv := b.liveStore(ctx); kv != nil {
		l.store = newLiveState(kv, liveKey(b.host), b.nc.MaxPayload())
		if data, err := l.store.load(ctx); err != nil {
			b.cfg.Logger.Warn("live calls: the saved state could not be read; starting afresh", "err", err)
		} else if data != nil {
			if err := tr.Import(data); err != nil {
				b.cfg.Logger.Warn("live calls: the saved state is unreadable; starting afresh", "err", err)
			} else {
				l.stale = true
			}
		}
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
			l.publish(ctx, tr.Observe(ev))
		},
		OnState: func(st openapi.EventStreamState) { l.state(ctx, st) },
		OnLost: func(n int) {
			b.metrics.liveDropped("slow", n)
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
	var saver sync.WaitGroup
	saver.Go(func() { l.saveLoop(ctx) })
	if err := stream.Run(ctx); err != nil && ctx.Err() == nil {
		b.cfg.Logger.Error("live calls: the event stream ended", "err", err)
	}
	saver.Wait()
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

// liveRun is one event stream's publishing, on the stream's goroutine,
// and the saving of its tracker's state, on the saver's.
type liveRun struct {
	b     *Bridge
	api   *openapi.Client
	tr    *livecall.Tracker
	store *liveState // nil without JetStream: the state lives as long as the process
	// mu is held while frames become events and are published, and while
	// the state is exported: a saved state never has a transition whose
	// event was not published yet (publish first: a crash between the two
	// makes the next holder publish it again, with the same id).
	mu    sync.Mutex
	dirty atomic.Bool   // events were published since the last save
	saved chan struct{} // pokes the saver
	// stale: the tracker started from a saved state, which calls may have
	// left since; the first connection reconciles as after a gap.
	stale bool
}

// publish publishes evs in order (l.mu held), and has the state saved.
func (l *liveRun) publish(ctx context.Context, evs []livecall.Event) {
	if len(evs) == 0 {
		return
	}
	for _, e := range evs {
		ev, err := l.outEvent(e)
		if err != nil {
			l.b.cfg.Logger.Error("live calls: event not built", "type", e.Type, "err", err)
			continue
		}
		if err := l.b.pub.publish(ctx, ev); err != nil && ctx.Err() == nil {
			l.b.cfg.Logger.Warn("live calls: event not published", "subject", ev.subject, "err", err)
		}
	}
	l.dirty.Store(true)
	select {
	case l.saved <- struct{}{}:
	default:
	}
}

// saveLoop saves the state after events were published, at most every
// liveSaveEvery, until ctx ends; then once more, what is left.
func (l *liveRun) saveLoop(ctx context.Context) {
	if l.store == nil {
		return
	}
	failing := false
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			l.saveOnce(fctx, &failing)
			cancel()
			return
		case <-l.saved:
		}
		l.saveOnce(ctx, &failing)
		sleep(ctx, liveSaveEvery)
	}
}

// saveOnce writes the state if events were published since the last
// write. A failure is warned about once, until a save works again.
func (l *liveRun) saveOnce(ctx context.Context, failing *bool) {
	if !l.dirty.Swap(false) {
		return
	}
	l.mu.Lock()
	state, err := l.tr.Export()
	l.mu.Unlock()
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = l.store.save(sctx, state)
		cancel()
	}
	switch {
	case err != nil:
		l.dirty.Store(true)
		select {
		case l.saved <- struct{}{}:
		default:
		}
		if !*failing {
			l.b.cfg.Logger.Warn("live calls: the state was not saved; trying again (a failover meanwhile may repeat or miss a transition)", "err", err)
		}
		*failing = true
	case *failing:
		l.b.cfg.Logger.Info("live calls: the state is saved again")
		*failing = false
	}
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
	l.publish(ctx, l.tr.Reconcile(live, asOf))
}
