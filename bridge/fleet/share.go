package fleet

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The fair share: taking leases nobody holds, handing over what is above
// the share, and letting leases go (a hand-off, a removal, the shutdown).

// balance takes unowned leases up to the fair share, and hands over what
// is above it. Because the share is rounded up, a replica at its share
// never sheds, and one below it only takes what nobody holds: nothing
// moves back and forth.
func (f *Fleet) balance(ctx context.Context) {
	fair := f.fairShare()
	f.mu.Lock()
	have := 0
	for _, l := range f.held {
		if !l.releasing {
			have++
		}
	}
	f.mu.Unlock()
	switch {
	case have > fair:
		f.shed(ctx, have-fair)
	case have < fair:
		f.acquire(ctx, fair-have)
	}
	// Leases held for extensions no longer wanted (removed meanwhile).
	f.mu.Lock()
	var stale []string
	for ext, l := range f.held {
		if !l.releasing && !f.host.Wanted(ext) {
			stale = append(stale, ext)
		}
	}
	f.mu.Unlock()
	for _, ext := range stale {
		f.handOver(ext, "removed")
	}
}

// acquire takes up to n leases that nobody holds, in random order so that
// replicas starting together do not all race for the same ones.
func (f *Fleet) acquire(ctx context.Context, n int) {
	cands := f.host.Candidates()
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	for _, ext := range cands {
		if n == 0 || ctx.Err() != nil {
			return
		}
		key := f.leaseKey(ext)
		f.mu.Lock()
		_, mine := f.held[ext]
		owner := f.owners[key]
		f.mu.Unlock()
		if mine || owner != "" || f.cool(ext) {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, f.opTimeout())
		rev, err := f.kv.Create(actx, key, f.value())
		cancel()
		if err != nil {
			continue // someone was quicker, or NATS is away: the next tick looks again
		}
		now := time.Now()
		f.mu.Lock()
		if f.draining.Load() { // too late: drain has taken stock
			f.mu.Unlock()
			f.deleteLease(ext, key, rev)
			return
		}
		f.held[ext] = &lease{key: key, rev: rev, renewed: now, acquired: now}
		f.owners[key] = f.replica
		f.mu.Unlock()
		f.metrics.LeaseAcquired()
		f.log.Info("fleet: lease taken", "ext", ext)
		if !f.host.Start(ext) {
			f.handOver(ext, "released")
			continue
		}
		n--
	}
}

// shed hands over n leases, the most recently taken first, a few per tick
// so that a joining replica takes them over gradually.
func (f *Fleet) shed(ctx context.Context, n int) {
	f.mu.Lock()
	type held struct {
		ext string
		at  time.Time
	}
	var all []held
	for ext, l := range f.held {
		if !l.releasing {
			all = append(all, held{ext, l.acquired})
		}
	}
	f.mu.Unlock()
	if len(all) == 0 {
		return
	}
	slices.SortFunc(all, func(a, b held) int { return b.at.Compare(a.at) }) // newest first
	n = min(n, max(1, len(all)/4))
	for _, h := range all[:n] {
		if ctx.Err() != nil {
			return
		}
		f.log.Info("fleet: handing an extension over towards the fair share", "ext", h.ext)
		f.metrics.HandOff()
		f.handOver(h.ext, "released")
	}
}

// handOver releases ext in the background: the logout may take up to
// half of ShutdownTimeout (logoutTimeout), and the renewals and fencing of every other
// lease must not wait behind it. The lease is renewed until the logout
// has ended.
func (f *Fleet) handOver(ext, reason string) {
	f.mu.Lock()
	l := f.held[ext]
	if l == nil || l.releasing || f.draining.Load() { // drain releases every lease itself
		f.mu.Unlock()
		return
	}
	l.releasing = true
	f.handing.Add(1) // under mu: never beside drain's Wait
	f.mu.Unlock()
	go func() {
		defer f.handing.Done()
		f.Release(ext, reason)
	}()
}

// Release stops ext's session (if it runs), its lease renewed meanwhile,
// and then deletes the lease at its revision, so that another replica
// takes it over at once.
func (f *Fleet) Release(ext, reason string) {
	f.mu.Lock()
	if l := f.held[ext]; l != nil {
		l.releasing = true
	}
	f.mu.Unlock()
	f.host.Halt(ext, reason)
	f.mu.Lock()
	l := f.held[ext]
	delete(f.held, ext)
	for l != nil && l.renewing > 0 {
		f.idle.Wait() // a renewal under way: delete at the revision it writes
	}
	f.mu.Unlock()
	if l == nil {
		return // lost meanwhile (a refused renewal, or fencing)
	}
	f.deleteLease(ext, l.key, l.rev)
	if !f.draining.Load() {
		f.poke() // below the share now: look for work (not while shutting down)
	}
}

// deleteLease deletes a lease at its revision, so that another replica
// may take it at once.
func (f *Fleet) deleteLease(ext, key string, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), f.renewEvery())
	defer cancel()
	if err := f.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		f.log.Warn("fleet: lease not released; it lapses by its TTL", "ext", ext, "err", err)
	}
}

// Drain logs every held extension out, all at once, each lease renewed
// until its own logout has ended, and then releases the lease: called at
// shutdown while Run still renews, so that no other replica logs in
// before this one has logged out, and that they take over in about the
// login time, not the TTL. It waits for hand-offs under way.
func (f *Fleet) Drain() int {
	_ = f.sub.Unsubscribe()
	f.mu.Lock()
	f.draining.Store(true) // under mu: no lease is taken or handed over after the stock below
	var exts []string
	for ext := range f.held {
		exts = append(exts, ext)
	}
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, ext := range exts {
		wg.Go(func() { f.Release(ext, "shutdown") })
	}
	wg.Wait()
	f.handing.Wait()
	return len(exts)
}
