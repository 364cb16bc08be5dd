package fleet

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Renewals and fencing: a lease is held only while it is renewed.

// renewers bounds the lease renewals in flight at once: a replica holding
// thousands renews them in a fraction of the tick.
const renewers = 16

// renew writes every held lease again at its revision. A refused write
// (someone else holds it now, or it lapsed) stops the extension at once; a
// write that fails otherwise (NATS unreachable) is tried again next tick,
// and fence stops the extension once half the TTL passed without a
// success. While the connection is down nothing is tried: each write would
// only wait for its timeout.
func (f *Fleet) renew(ctx context.Context) {
	if f.nc.Status() != nats.CONNECTED {
		return
	}
	type job struct {
		ext     string
		l       *lease
		rev     uint64
		renewed time.Time
	}
	f.mu.Lock()
	jobs := make([]job, 0, len(f.held))
	for ext, l := range f.held {
		l.renewing++
		jobs = append(jobs, job{ext, l, l.rev, l.renewed})
	}
	f.mu.Unlock()
	value := f.value()
	slots := make(chan struct{}, renewers)
	var wg sync.WaitGroup
	for _, j := range jobs {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			f.renewOne(ctx, j.ext, j.l, j.rev, j.renewed, value)
		})
	}
	wg.Wait()
}

// renewOne writes l again at rev. It counts in l.renewing, so that a
// release waits for it and deletes the lease at the revision it wrote.
func (f *Fleet) renewOne(ctx context.Context, ext string, l *lease, rev uint64, renewed time.Time, value []byte) {
	defer func() {
		f.mu.Lock()
		if l.renewing--; l.renewing == 0 {
			f.idle.Broadcast()
		}
		f.mu.Unlock()
	}()
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	next, err := f.kv.Update(rctx, l.key, value, rev)
	cancel()
	switch {
	case err == nil:
		f.metrics.LeaseRenewed(time.Since(start))
		f.mu.Lock()
		if l.rev == rev {
			l.rev, l.renewed = next, time.Now()
		}
		f.mu.Unlock()
	case refused(err):
		f.lose(ext, "lease_lost", "the lease was taken or lapsed", err)
	case ctx.Err() == nil:
		f.log.Warn("fleet: lease renewal failed; trying again", "ext", ext, "err", err, "since_renewed", time.Since(renewed))
	}
}

// fence stops, within a tenth of the TTL, every extension whose lease was
// not renewed for half the TTL: by then another replica may take it soon
// (at the TTL), and the session must be closed before. It runs apart from
// the renewals, which may be stuck waiting for NATS.
func (f *Fleet) fence(ctx context.Context) {
	t := time.NewTicker(f.fenceCheck())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		var stale []string
		for ext, l := range f.held {
			if time.Since(l.renewed) > f.fenceAfter() {
				stale = append(stale, ext)
			}
		}
		f.mu.Unlock()
		for _, ext := range stale {
			f.lose(ext, "lease_lost", "no renewal for half the lease TTL (fencing)", nil)
		}
	}
}

// refused reports whether a KV write failed because of the key's state
// (another revision, deleted), not because the server was unreachable.
func refused(err error) bool {
	var ae *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) ||
		errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// lose forgets a lease and stops its extension (socket first).
func (f *Fleet) lose(ext, reason, why string, err error) {
	f.mu.Lock()
	_, ok := f.held[ext]
	delete(f.held, ext)
	f.mu.Unlock()
	if !ok {
		return
	}
	f.metrics.LeaseLost()
	f.log.Warn("fleet: lease lost; stopping the extension", "ext", ext, "why", why, "err", err)
	go f.host.Halt(ext, reason)
}
