package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher sends events. Each returns once the events are as safe as the
// mode allows: acknowledged by JetStream, or handed to the NATS connection.
type publisher interface {
	// publish sends one event.
	publish(ctx context.Context, ev outEvent) error
	// publishInOrder sends evs so that the stream stores them in that
	// order, pipelined where the mode allows, and returns how many of the
	// leading events are dealt with: published, or refused as too large
	// (told to dropped; never retried). It returns len(evs) and nil, or
	// less and why it stopped.
	publishInOrder(ctx context.Context, evs []outEvent, dropped func(outEvent, error)) (int, error)
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

func (p *corePublisher) publishInOrder(ctx context.Context, evs []outEvent, dropped func(outEvent, error)) (int, error) {
	for i, ev := range evs {
		err := p.publish(ctx, ev)
		switch {
		case err == nil:
		case tooLarge(err):
			dropped(ev, err)
		default:
			return i, err
		}
	}
	return len(evs), nil
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

	// async is the JetStream context of the pipelined publishes
	// (publishInOrder): its own, so that every asynchronous publish is
	// bounded by ackTimeout and the process's publishes in flight by
	// asyncMaxPending.
	asyncOnce sync.Once
	async     jetstream.JetStream
	asyncErr  error
}

// retryBackoff is the backoff between attempts of a publish that was not
// acknowledged.
func (p *jsPublisher) retryBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = p.retryMax
	b.MaxElapsedTime = 0
	return b
}

func (p *jsPublisher) publish(ctx context.Context, ev outEvent) error {
	// The common case, acknowledged at the first attempt, goes without the
	// retry machinery.
	err := p.attempt(ctx, ev, 1)
	if err != nil && !isPermanent(err) {
		attempt := 1
		err = backoff.Retry(func() error {
			attempt++
			return p.attempt(ctx, ev, attempt)
		}, backoff.WithContext(p.retryBackoff(), ctx))
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", ev.subject, err)
	}
	p.metrics.published(ev.typ)
	return nil
}

func isPermanent(err error) bool {
	var pe *backoff.PermanentError
	return errors.As(err, &pe)
}

// attempt is one attempt of publish: nil once acknowledged, a
// backoff.Permanent error when retrying cannot help (ctx ended, too large),
// another error to retry after.
func (p *jsPublisher) attempt(ctx context.Context, ev outEvent, attempt int) error {
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
	// Say so at once, then now and then: an outage must show in the log,
	// not only in a counter.
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

// Bounds of the pipelined publishes of publishInOrder.
const (
	// publishWindow bounds one caller's events in flight: enough to keep a
	// stream busy while acknowledgements make their round trip, few enough
	// that a failure sends little again.
	publishWindow = 256
	// asyncMaxPending bounds the pipelined events in flight of the whole
	// process (many extensions catching up at once after an outage); a
	// publish beyond it waits for room, for at most ackTimeout.
	asyncMaxPending = 4096
)

func (p *jsPublisher) asyncJS() (jetstream.JetStream, error) {
	p.asyncOnce.Do(func() {
		p.async, p.asyncErr = jetstream.New(p.js.Conn(),
			jetstream.WithPublishAsyncTimeout(p.ackTimeout),
			jetstream.WithPublishAsyncMaxPending(asyncMaxPending))
	})
	return p.async, p.asyncErr
}

// publishInOrder publishes evs asynchronously, at most publishWindow in
// flight, and checks every acknowledgement. Messages of one connection
// reach the stream in the order sent, so in the common case the stream
// stores evs in order at the speed of the stream, not of a round trip per
// event.
//
// A failure must not reorder what the stream holds: the extension's last
// cdr.created in the stream is the cursor's source (kvCursors), and must
// mean every record before it is in. The events after a failed one may
// have been stored already (a lost connection loses what was in it, and
// what was sent after goes through on the next), so on a failure the
// window stops sending, waits for what is in flight, and after a backoff
// sends everything again from the failed event on, in order: what the
// stream has already is dropped as a duplicate (same Nats-Msg-Id), what it
// missed is stored after, and the last cdr.created the stream stores is
// then the last of the contiguous run. Like publish it retries until ctx
// ends, and re-creates a vanished stream (ensure).
func (p *jsPublisher) publishInOrder(ctx context.Context, evs []outEvent, dropped func(outEvent, error)) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	js, err := p.asyncJS()
	if err != nil {
		return 0, fmt.Errorf("jetstream: %w", err)
	}
	b := p.retryBackoff()
	done := 0
	for attempt := 1; ; attempt++ {
		n, err := p.window(ctx, js, evs[done:], dropped)
		done += n
		if err == nil {
			if attempt > 1 {
				p.log.Info("publish succeeded after retries", "subject", evs[len(evs)-1].subject, "attempts", attempt)
			}
			return done, nil
		}
		if ctx.Err() != nil {
			return done, fmt.Errorf("publish %s: %w", evs[done].subject, ctx.Err())
		}
		ev := evs[done]
		p.metrics.publishError(ev.typ)
		p.metrics.publishRetry(ev.typ)
		if attempt == 1 || attempt%20 == 0 {
			p.log.Warn("pipelined publish not acknowledged; sending again from the first event not acknowledged",
				"subject", ev.subject, "attempt", attempt, "acknowledged", done, "events", len(evs), "err", err)
		}
		ectx, ecancel := context.WithTimeout(ctx, p.ackTimeout)
		if eerr := p.ensure(ectx); eerr != nil && attempt == 1 {
			p.log.Warn("stream check failed", "err", eerr)
		}
		ecancel()
		if !sleep(ctx, b.NextBackOff()) {
			return done, fmt.Errorf("publish %s: %w", ev.subject, ctx.Err())
		}
	}
}

// window is one attempt of publishInOrder: it returns how many leading
// events were acknowledged (or refused as too large), and the first
// failure, after which it sends nothing more and waits for what is in
// flight. Every future resolves: acknowledged, failed, timed out
// (ackTimeout) or failed by a reconnect.
func (p *jsPublisher) window(ctx context.Context, js jetstream.JetStream, evs []outEvent, dropped func(outEvent, error)) (int, error) {
	// ring holds what became of evs[head:sent]: a future, or the error of
	// a publish the connection refused at once as too large.
	type slot struct {
		f   jetstream.PubAckFuture
		err error
	}
	var ring [publishWindow]slot
	head, sent, acked := 0, 0, 0
	var sendErr, ackErr error
	sending := func() bool { return sendErr == nil && ackErr == nil && sent < len(evs) }
	for head < sent || sending() {
		for sending() && sent-head < publishWindow {
			if !js.Conn().IsConnected() {
				// What is sent now would wait in the reconnect buffer and
				// reach the stream after the reconnect, while what was in
				// the lost connection is gone: a hole. Stop, and send
				// everything not acknowledged again after the reconnect.
				sendErr = nats.ErrDisconnected
				break
			}
			ev := evs[sent]
			f, err := js.PublishMsgAsync(eventMsg(ev), jetstream.WithMsgID(ev.id), jetstream.WithStallWait(p.ackTimeout))
			if err != nil && !tooLarge(err) {
				sendErr = err
				break
			}
			ring[sent%publishWindow] = slot{f, err}
			sent++
		}
		if head == sent {
			break
		}
		sl := ring[head%publishWindow]
		ring[head%publishWindow] = slot{}
		ev := evs[head]
		head++
		err := sl.err
		if sl.f != nil {
			select {
			case <-sl.f.Ok():
			case err = <-sl.f.Err():
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		if ackErr != nil {
			continue // draining after a failure: what follows it is sent again
		}
		switch {
		case err == nil:
			p.metrics.published(ev.typ)
			acked++
		case tooLarge(err):
			p.metrics.publishError(ev.typ)
			dropped(ev, fmt.Errorf("%w: %w", errTooLarge, err))
			acked++
		default:
			ackErr = err
		}
	}
	if ackErr != nil {
		return acked, ackErr
	}
	return acked, sendErr
}
