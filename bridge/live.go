package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	if c.Events.Enabled && c.Fleet.Enabled {
		errs = append(errs, errors.New("events.enabled: not yet in a fleet (fleet.enabled): the one event socket per PBX has no owner among the replicas yet"))
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
	if b.cfg.Events.Enabled {
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

// runLive runs the event socket until ctx ends, reconnecting.
func (b *Bridge) runLive(ctx context.Context) {
	tr := b.tracker
	kv := b.liveStore(ctx)
	if kv != nil {
		if e, err := kv.Get(ctx, liveKey(b.host)); err == nil {
			if err := tr.Import(e.Value()); err != nil {
				b.cfg.Logger.Warn("live calls: the saved state is unreadable; starting afresh", "err", err)
			}
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			b.cfg.Logger.Warn("live calls: the saved state could not be read; starting afresh", "err", err)
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
	l := &liveRun{b: b, tr: tr, kv: kv}
	stream, err := b.openapi.NewEventStream(openapi.EventStreamConfig{
		Topics:  types,
		OnEvent: func(ev *openapi.Event) { l.publish(ctx, tr.Observe(ev)) },
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
	if err := stream.Run(ctx); err != nil && ctx.Err() == nil {
		b.cfg.Logger.Error("live calls: the event stream ended", "err", err)
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

// liveRun is one event stream's publishing, on the stream's goroutine.
type liveRun struct {
	b  *Bridge
	tr *livecall.Tracker
	kv jetstream.KeyValue
}

// publish publishes evs in order, and then saves the tracker's state.
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
	l.save(ctx)
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

// save writes the tracker's state, after the events it led to.
func (l *liveRun) save(ctx context.Context) {
	if l.kv == nil {
		return
	}
	state, err := l.tr.Export()
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = l.kv.Put(sctx, liveKey(l.b.host), state)
		cancel()
	}
	if err != nil && ctx.Err() == nil {
		l.b.cfg.Logger.Warn("live calls: the state was not saved; a restart may repeat or miss a transition", "err", err)
	}
}

// state reconciles the tracker after a gap: the calls that ended while the
// socket was away end now (cause gap).
func (l *liveRun) state(ctx context.Context, st openapi.EventStreamState) {
	if !st.Up {
		l.b.cfg.Logger.Info("live calls: the event socket is down", "err", st.Err)
		return
	}
	l.b.cfg.Logger.Info("live calls: the event socket is up", "reconnect", st.Reconnect)
	if !st.Reconnect {
		return
	}
	asOf := l.b.cfg.now()
	var live []openapi.CallState
	for _, typ := range []string{"inbound", "outbound", "internal"} {
		qctx, cancel := context.WithTimeout(ctx, l.b.cfg.RequestTimeout)
		calls, err := l.b.openapi.QueryCalls(qctx, openapi.CallQuery{Type: typ})
		cancel()
		if err != nil {
			l.b.cfg.Logger.Warn("live calls: the live calls could not be read after a gap; the tracker waits for the next frames", "err", err)
			return
		}
		live = append(live, calls...)
	}
	l.publish(ctx, l.tr.Reconcile(live, asOf))
}
