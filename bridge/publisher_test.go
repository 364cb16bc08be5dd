package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// streamIDs returns the Nats-Msg-Id of every message in the stream BENCH,
// in stream order.
func streamIDs(t *testing.T, p *jsPublisher) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.js.OrderedConsumer(ctx, "BENCH", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ids = append(ids, m.Headers().Get(jetstream.MsgIDHeader))
		}
		if n == 0 {
			return ids
		}
	}
}

// TestPublishInOrder: items of none, one or two events reach the stream in
// order, progress is told at every item boundary it asked for, and a
// failing build stops the batch at its item, with nothing of that item or
// after it sent.
func TestPublishInOrder(t *testing.T) {
	p := benchStream(t)
	ev, err := benchFactory.cdrCreated(pbx.Extension{Number: "1001"}, benchRecord(1), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	const items = 700
	eventsOf := func(i int) []outEvent {
		var out []outEvent
		for k := 0; k < i%3; k++ { // 0, 1 or 2 events
			e := ev
			e.id = fmt.Sprintf("item-%d-%d", i, k)
			out = append(out, e)
		}
		return out
	}
	var told []int
	brokenAt := 650
	n, err := p.publishInOrder(context.Background(), orderedBatch{
		n: items,
		events: func(i int) ([]outEvent, error) {
			if i == brokenAt {
				return nil, errors.New("cannot build")
			}
			return eventsOf(i), nil
		},
		dropped:  func(outEvent, error) { t.Error("nothing is too large here") },
		progress: func(done int) error { told = append(told, done); return nil },
		every:    100,
	})
	if n != brokenAt || err == nil || err.Error() != "cannot build" {
		t.Fatalf("publishInOrder = %d, %v; want %d and the build's error", n, err, brokenAt)
	}
	var want []string
	for i := 0; i < brokenAt; i++ {
		for _, e := range eventsOf(i) {
			want = append(want, e.id)
		}
	}
	if got := streamIDs(t, p); !slices.Equal(got, want) {
		t.Fatalf("the stream holds %d events, want %d in item order (first differences: %v)", len(got), len(want), firstDiff(got, want))
	}
	if !slices.Equal(told, []int{100, 200, 300, 400, 500, 600}) {
		t.Fatalf("progress told %v", told)
	}

	// A progress that fails (a cursor another replica wrote) stops the
	// batch too.
	stop := errors.New("cursor moved")
	n, err = p.publishInOrder(context.Background(), orderedBatch{
		n:        items,
		events:   func(i int) ([]outEvent, error) { return eventsOf(i + items), nil },
		dropped:  func(outEvent, error) {},
		progress: func(int) error { return stop },
		every:    50,
	})
	if !errors.Is(err, stop) || n < 50 || n >= items {
		t.Fatalf("publishInOrder with a failing progress = %d, %v", n, err)
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("at %d: %s, want %s", i, a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}
