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
	// publishInOrder sends the events of b's items so that the stream
	// stores them in that order, pipelined where the mode allows, and
	// returns how many of the leading items are dealt with: every event
	// published, or refused as too large (told to b.dropped; never
	// retried). It returns b.n and nil, or less and why it stopped.
	publishInOrder(ctx context.Context, b orderedBatch) (int, error)
}

// orderedBatch is what publishInOrder sends: n items (a catch-up's
// records), each of one or more events, in order.
type orderedBatch struct {
	n int
	// events builds item i's events when they are due (again, on a
	// retry: they must come out the same). An item may have none. An error
	// stops the batch, without a retry.
	events func(i int) ([]outEvent, error)
	// dropped is told each event the server refused as too large.
	dropped func(outEvent, error)
	// progress, if set, is told the number of leading items dealt with,
	// each time it has grown by every; an error stops the batch.
	progress func(items int) error
	every    int
}

// errStopped wraps what stops a batch for good: a failed build or
// progress. It is not retried.
type errStopped struct{ err error }

func (e *errStopped) Error() string { return e.err.Error() }
func (e *errStopped) Unwrap() error { return e.err }

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

func (p *corePublisher) publishInOrder(ctx context.Context, b orderedBatch) (int, error) {
	told := 0
	for i := 0; i < b.n; i++ {
		evs, err := b.events(i)
		if err != nil {
			return i, err
		}
		for _, ev := range evs {
			err := p.publish(ctx, ev)
			switch {
			case err == nil:
			case tooLarge(err):
				b.dropped(ev, err)
			default:
				return i, err
			}
		}
		if b.progress != nil && i+1-told >= b.every {
			if err := b.progress(i + 1); err != nil {
				return i + 1, err
			}
			told = i + 1
		}
	}
	return b.n, nil
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
	// that a failure sends little again. A window holds at most twice its
	// batch's items, so that the many small catch-ups after an outage cost
	// little memory each.
	publishWindow = 1024
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

// publishInOrder publishes the events of b's items asynchronously, built
// as they are due, at most publishWindow in flight, and checks every
// acknowledgement. Messages of one connection reach the stream in the
// order sent, so in the common case the stream stores them in order at
// the speed of the stream, not of a round trip per event, and the next
// events are built while the stream stores those in flight.
//
// A failure must not reorder what the stream holds: the extension's last
// cdr.created in the stream is the cursor's source (kvCursors), and must
// mean every record before it is in. The events after a failed one may
// have been stored already (a lost connection loses what was in it, and
// what was sent after goes through on the next), so on a failure the
// window stops sending, waits for what is in flight, and after a backoff
// sends everything again from the first item not dealt with, in order:
// what the stream has already is dropped as a duplicate (same
// Nats-Msg-Id), what it missed is stored after, and the last cdr.created
// the stream stores is then the last of the contiguous run. Nothing is
// sent while the connection is down. Like publish it retries until ctx
// ends, and re-creates a vanished stream (ensure).
func (p *jsPublisher) publishInOrder(ctx context.Context, b orderedBatch) (int, error) {
	if b.n == 0 {
		return 0, nil
	}
	js, err := p.asyncJS()
	if err != nil {
		return 0, fmt.Errorf("jetstream: %w", err)
	}
	bo := p.retryBackoff()
	done := 0
	for attempt := 1; ; attempt++ {
		w := window{p: p, js: js, b: b, done: done, next: done, told: done, ring: make([]slot, min(publishWindow, 2*(b.n-done)+1)),
			epoch: js.Conn().Stats().Reconnects}
		err := w.run(ctx)
		done = w.done
		var stopped *errStopped
		switch {
		case err == nil:
			if attempt > 1 {
				p.log.Info("pipelined publish succeeded after retries", "attempts", attempt, "items", b.n)
			}
			return done, nil
		case errors.As(err, &stopped):
			return done, stopped.err
		case ctx.Err() != nil:
			return done, fmt.Errorf("publish: %w", ctx.Err())
		}
		p.metrics.publishRetry(w.failedType)
		if attempt == 1 || attempt%20 == 0 {
			p.log.Warn("pipelined publish not acknowledged; sending again from the first item not acknowledged",
				"attempt", attempt, "items_done", done, "items", b.n, "err", err)
		}
		ectx, ecancel := context.WithTimeout(ctx, p.ackTimeout)
		if eerr := p.ensure(ectx); eerr != nil && attempt == 1 {
			p.log.Warn("stream check failed", "err", eerr)
		}
		ecancel()
		if !sleep(ctx, bo.NextBackOff()) {
			return done, fmt.Errorf("publish: %w", ctx.Err())
		}
	}
}
