// Command missed-call-worker is an example consumer of pbx-bridge: a
// JetStream durable consumer on pbx.*.call.missed that hands each missed
// call to a callback (here: prints who to call back) and acknowledges it
// only once handled, so a crash redelivers rather than loses it.
//
//	go run ./examples/missed-call-worker --server nats://127.0.0.1:4222
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/schema"
)

// MissedCall is what the worker hands to its callback.
type MissedCall struct {
	EventID   string
	Extension string
	Caller    string
	At        time.Time
	Data      schema.CallMissed
}

// Options name the stream and the durable consumer.
type Options struct {
	Stream  string // default "PBX_EVENTS"
	Durable string // default "missed-call-worker"
	Subject string // default "pbx.*.call.missed"
	// AckWait is how long a delivered call may take before it is delivered
	// again (default 30s).
	AckWait time.Duration
}

// Run consumes missed calls until ctx ends. A callback error makes the
// message be delivered again later (Nak with a delay); a message that is
// not a valid call.missed event is terminated (never redelivered) and logged.
func Run(ctx context.Context, js jetstream.JetStream, opts Options, log *slog.Logger, handle func(context.Context, MissedCall) error) error {
	if opts.Stream == "" {
		opts.Stream = "PBX_EVENTS"
	}
	if opts.Durable == "" {
		opts.Durable = "missed-call-worker"
	}
	if opts.Subject == "" {
		opts.Subject = "pbx.*.call.missed"
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 30 * time.Second
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, opts.Stream, jetstream.ConsumerConfig{
		Durable:       opts.Durable,
		FilterSubject: opts.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       opts.AckWait,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", opts.Durable, opts.Stream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		call, err := decode(m.Data())
		if err != nil {
			log.Error("not a call.missed event; dropping it", "subject", m.Subject(), "err", err)
			_ = m.Term()
			return
		}
		if err := handle(ctx, call); err != nil {
			log.Warn("handler failed; will retry", "event", call.EventID, "err", err)
			_ = m.NakWithDelay(5 * time.Second)
			return
		}
		if err := m.DoubleAck(ctx); err != nil {
			log.Warn("ack failed; the call may be delivered again", "event", call.EventID, "err", err)
		}
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	cc.Drain()
	<-cc.Closed()
	return nil
}

func decode(raw []byte) (MissedCall, error) {
	if err := schema.Validate(schema.TypeCallMissed, raw); err != nil {
		return MissedCall{}, err
	}
	var ev schema.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return MissedCall{}, err
	}
	var d schema.CallMissed
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return MissedCall{}, err
	}
	return MissedCall{EventID: ev.ID, Extension: d.Extension.Number, Caller: d.CallerNumber, At: d.Time, Data: d}, nil
}

func main() {
	server := flag.String("server", nats.DefaultURL, "NATS server URL")
	durable := flag.String("durable", "missed-call-worker", "durable consumer name")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(*server, nats.Name("missed-call-worker"))
	if err != nil {
		log.Error("connect", "err", err)
		os.Exit(1)
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Error("jetstream", "err", err)
		os.Exit(1)
	}
	err = Run(ctx, js, Options{Durable: *durable}, log, func(_ context.Context, c MissedCall) error {
		fmt.Printf("call back %s: missed by extension %s at %s\n", c.Caller, c.Extension, c.At.Local().Format(time.DateTime))
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("worker", "err", err)
		os.Exit(1)
	}
}
