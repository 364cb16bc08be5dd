package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// A new holder of the event stream (a replica taking over, the next run)
// starts from the saved state, which trails the events by up to a save;
// it then reads the call events the signals stream holds since a little
// before that save, and moves its tracker to them (Tracker.Replay), before
// it reconciles with the PBX. So what it derives follows what was
// published, with the next seq and the ids the last holder would have
// given, instead of numbering again from the saved state.

const (
	// liveReplayMargin reaches back before the state's save time: the
	// saver's and the server's clocks, and the events in flight.
	liveReplayMargin = 10 * time.Second
	// liveReplayMax bounds the events read, and liveReplayTimeout the time
	// spent: a replay is what one save interval left behind.
	liveReplayMax     = 200000
	liveReplayTimeout = 30 * time.Second
	// liveReplayFresh is how far back a holder with no saved state reads.
	liveReplayFresh = 5 * time.Minute
)

// replayLive replays into tr the call events of the signals stream
// published since since, and returns how many moved it.
func (b *Bridge) replayLive(ctx context.Context, tr *livecall.Tracker, since time.Time) (int, error) {
	if b.js == nil {
		return 0, nil
	}
	rctx, cancel := context.WithTimeout(ctx, liveReplayTimeout)
	defer cancel()
	var filters []string
	for _, name := range []string{schema.CallRinging, schema.CallAnswered, schema.CallHeld, schema.CallResumed, schema.CallEnded} {
		filters = append(filters, b.cfg.Prefix+".*.call."+name)
	}
	c, err := b.js.OrderedConsumer(rctx, b.cfg.JetStream.Signals.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
	})
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", b.cfg.JetStream.Signals.Stream, err)
	}
	info, err := c.Info(rctx)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", b.cfg.JetStream.Signals.Stream, err)
	}
	moved, read := 0, 0
	for pending := int(info.NumPending); pending > 0 && read < liveReplayMax; {
		batch, err := c.Fetch(min(pending, 500), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return moved, fmt.Errorf("reading %s: %w", b.cfg.JetStream.Signals.Stream, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if replayMsg(tr, m) {
				moved++
			}
		}
		if got == 0 {
			return moved, fmt.Errorf("reading %s: stopped with %d events pending: %v", b.cfg.JetStream.Signals.Stream, pending, batch.Error())
		}
		pending -= got
		read += got
	}
	return moved, nil
}

// replayMsg replays one stored call event; one that does not decode is
// skipped (Replay counts the incomplete ones).
func replayMsg(tr *livecall.Tracker, m jetstream.Msg) bool {
	var env schema.Event
	var d schema.CallEvent
	if json.Unmarshal(m.Data(), &env) != nil || json.Unmarshal(env.Data, &d) != nil {
		return false
	}
	at := time.Now()
	if md, err := m.Metadata(); err == nil {
		at = md.Timestamp
	}
	return tr.Replay(d, at)
}
