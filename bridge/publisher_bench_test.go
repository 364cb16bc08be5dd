package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/bridge/natsembed"
	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// benchStream starts a NATS server with a stream over "pbx.>" and returns a
// JetStream publisher to it, as the bridge makes one.
func benchStream(b testing.TB) *jsPublisher {
	b.Helper()
	ns, err := natsembed.Start("127.0.0.1:0", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"pbx.>"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	return &jsPublisher{js: js, ackTimeout: 5 * time.Second, retryMax: time.Second, metrics: newMetrics(false),
		log: slog.New(slog.DiscardHandler), ensure: func(context.Context) error { return nil }}
}

// benchRecord is a CDR record as a PBX returns it.
func benchRecord(id int) pbx.CDR {
	r := pbx.CDR{ID: id, Date: "Today", Time: "10:11:12", Timestamp: 1_700_000_000 + int64(id), Number: "5551234",
		NumberType: "external", Status: pbx.StatusIncoming, TalkDuration: 42, CallType: "Inbound",
		UniqueID: fmt.Sprintf("%d.%d", 1_700_000_000+id, id), Disposition: "ANSWERED", DContext: "DLPN_DialPlan5551234",
		CallerID: "5551234", CLID: `"5551234" <5551234>`}
	return r
}

var benchFactory = newEventFactory(subjects{prefix: "pbx"}, "pbx.example.com:8443", "1001")

// BenchmarkEventEncode builds the events of the hot paths: a notification
// (notify.*) and a record (cdr.created).
func BenchmarkEventEncode(b *testing.B) {
	ext := pbx.Extension{ID: 7, Number: "1001", Name: "Alice"}
	msg := json.RawMessage(`{"record_status":"start","call_feature":"record","caller_origin_number":"5551234","callee_origin_number":"1001","caller_sip_callid":"0000002a-bench@127.0.0.1","callee_sip_callid":"0000002b-bench@127.0.0.1"}`)
	b.Run("notify", func(b *testing.B) {
		b.ReportAllocs()
		now := time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := benchFactory.notify(ext, &pbx.Notice{Type: pbx.TypeRecordStatus, Msg: msg}, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cdr.created", func(b *testing.B) {
		b.ReportAllocs()
		r := benchRecord(1)
		for i := 0; i < b.N; i++ {
			if _, err := benchFactory.cdrCreated(ext, r, time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPublish publishes notification-sized events into a JetStream
// stream: one at a time awaiting each acknowledgement (publish, as every
// live event goes) from 1 and from 64 goroutines (as many extensions), and
// pipelined in order (publishInOrder, as catch-up goes). It reports
// events/s.
func BenchmarkPublish(b *testing.B) {
	ev, err := benchFactory.cdrCreated(pbx.Extension{Number: "1001"}, benchRecord(1), time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	events := func(from, n int) []outEvent {
		out := make([]outEvent, n)
		for i := range out {
			e := ev
			e.id = fmt.Sprintf("bench-%d", from+i)
			out[i] = e
		}
		return out
	}
	for _, goroutines := range []int{1, 64} {
		b.Run(fmt.Sprintf("publish/goroutines=%d", goroutines), func(b *testing.B) {
			p := benchStream(b)
			evs := events(0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; i < len(evs); i += goroutines {
						if err := p.publish(context.Background(), evs[i]); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
	b.Run("publishInOrder", func(b *testing.B) {
		p := benchStream(b)
		evs := events(0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		batch := orderedBatch{n: len(evs), events: func(i int) ([]outEvent, error) { return evs[i : i+1], nil },
			dropped: func(outEvent, error) {}}
		if _, err := p.publishInOrder(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
}
