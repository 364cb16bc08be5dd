package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher sends one event. It returns once the event is as safe as the
// mode allows: acknowledged by JetStream, or handed to the NATS connection.
type publisher interface {
	publish(ctx context.Context, ev outEvent) error
}

// cloudEventsContentType is the Content-Type header of every event.
const cloudEventsContentType = "application/cloudevents+json"

// errTooLarge is a publish that can never succeed: the event is larger than
// the NATS server (or the stream) takes. It is never retried.
var errTooLarge = errors.New("event larger than the NATS server's max_payload")

// tooLarge reports whether a publish error is one that no retry can fix.
func tooLarge(err error) bool {
	return errors.Is(err, errTooLarge) || errors.Is(err, nats.ErrMaxPayload) ||
		errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

func eventMsg(ev outEvent) *nats.Msg {
	m := nats.NewMsg(ev.subject)
	m.Data = ev.body
	// The header lets a stream that captures core publishes de-duplicate too.
	m.Header.Set(jetstream.MsgIDHeader, ev.id)
	m.Header.Set("Content-Type", cloudEventsContentType)
	m.Header.Set("Ce-Type", ev.typ)
	return m
}

// corePublisher publishes to core NATS: at most once, no acknowledgement.
type corePublisher struct {
	nc      *nats.Conn
	metrics *metrics
}

func (p *corePublisher) publish(_ context.Context, ev outEvent) error {
	if err := p.nc.PublishMsg(eventMsg(ev)); err != nil {
		p.metrics.publishError(ev.typ)
		return fmt.Errorf("publish %s: %w", ev.subject, err)
	}
	p.metrics.published(ev.typ)
	return nil
}

// jsPublisher publishes to JetStream with the event id as Nats-Msg-Id and
// waits for the acknowledgement. While NATS or the stream is unreachable it
// retries with backoff and holds the caller (back-pressure): memory stays
// bounded by the number of callers, and nothing is dropped. A stream that
// vanished is re-created (ensure), unless someone else manages it.
type jsPublisher struct {
	js         jetstream.JetStream
	ackTimeout time.Duration
	retryMax   time.Duration
	metrics    *metrics
	log        *slog.Logger
	ensure     func(context.Context) error
}

func (p *jsPublisher) publish(ctx context.Context, ev outEvent) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = p.retryMax
	b.MaxElapsedTime = 0
	attempt := 0
	op := func() error {
		attempt++
		actx, cancel := context.WithTimeout(ctx, p.ackTimeout)
		defer cancel()
		_, err := p.js.PublishMsg(actx, eventMsg(ev), jetstream.WithMsgID(ev.id))
		if err == nil {
			if attempt > 1 {
				p.log.Info("publish succeeded after retries", "subject", ev.subject, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return backoff.Permanent(ctx.Err())
		}
		if tooLarge(err) {
			p.metrics.publishError(ev.typ)
			return backoff.Permanent(fmt.Errorf("%w: %w", errTooLarge, err))
		}
		p.metrics.publishError(ev.typ)
		p.metrics.publishRetry(ev.typ)
		// Say so at once, then now and then: an outage must show in the
		// log, not only in a counter.
		if attempt == 1 || attempt%20 == 0 {
			p.log.Warn("publish not acknowledged; retrying", "subject", ev.subject, "attempt", attempt, "err", err)
		}
		// No stream answered (a core subscriber on the subject turns "no
		// responders" into a timeout, so any failure counts): the stream may
		// have been deleted. Re-create it rather than wait forever.
		ectx, ecancel := context.WithTimeout(ctx, p.ackTimeout)
		defer ecancel()
		if eerr := p.ensure(ectx); eerr != nil && attempt == 1 {
			p.log.Warn("stream check failed", "err", eerr)
		}
		return err
	}
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		return fmt.Errorf("publish %s: %w", ev.subject, err)
	}
	p.metrics.published(ev.typ)
	return nil
}
