package fleet

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pbx-bridge/pbx-bridge/bridge/kvkey"
)

// The token budget of a fleet. The PBX lets one pair of OpenAPI
// credentials hold at most 8 access tokens (openapi.md); a replica that
// kept its own token would let only a few replicas run. So in a fleet no
// replica keeps one: every use of the OpenAPI (minting signatures, reading
// the extension list) happens under the fleet's one token lock, a key of
// the lease bucket taken with Create, renewed at its revision and deleted
// at the end, exactly like an extension's lease. The holder gets a token,
// does what its replica needs now (every signature its supervisors are
// waiting for, batched), revokes the token (del_token) and deletes the
// lock.
//
// Why at most two tokens are alive at once: a token exists only while its
// replica holds the lock, plus the moment a renewal overlaps the old and
// the new one (openapi.Client revokes the old before using the new), plus a
// holder fenced (its renewals failed) that has not revoked yet: fencing
// happens at half the lock's TTL and the lock lapses at the whole TTL, so
// the fenced holder's revoke normally lands before the next holder's
// get_token. A holder killed outright leaves its token to expire (30
// minutes): one such token beside the next holder's is the second. The
// fleet fault run checks the bound against the simulator's count.

// tokenLinger is how long a hold outlives its last user: supervisors that
// start together are paced by the request limiter, and mint under one hold
// rather than one hold (and one get_token) each.
const tokenLinger = time.Second

// RevokeTimeout bounds the revocation of a token, at the end of a hold and
// at shutdown; it is its own deadline, not what the logouts left of the
// shutdown timeout.
const RevokeTimeout = 5 * time.Second

// Revoker is the OpenAPI client whose token the lock rations: the token is
// revoked at the end of each hold.
type Revoker interface {
	Release(ctx context.Context) error
}

// ErrStopped is a use of the token lock once the fleet's tokens are closed.
var ErrStopped = errors.New("fleet: shutting down")

// tokenGate serialises a fleet's OpenAPI use through the token lock.
type tokenGate struct {
	f      *Fleet
	client Revoker
	key    string
	stop   chan struct{} // closed by close: no hold is taken after

	mu        sync.Mutex
	stopped   bool
	hold      *tokenHold
	acquiring chan struct{} // closed when the acquisition under way ends
}

// tokenHold is one tenure of the lock.
type tokenHold struct {
	lost  chan struct{} // closed when the lock is lost or released
	end   sync.Once
	rev   uint64
	users int
	done  chan struct{} // closed when the renewals have stopped
}

// finish ends the hold (idempotent).
func (h *tokenHold) finish() { h.end.Do(func() { close(h.lost) }) }

// over reports whether the hold has ended.
func (h *tokenHold) over() bool {
	select {
	case <-h.lost:
		return true
	default:
		return false
	}
}

func newTokenGate(f *Fleet, client Revoker) *tokenGate {
	return &tokenGate{f: f, client: client, key: "openapi.token." + kvkey.Host(f.pbxHost), stop: make(chan struct{})}
}

// WithToken runs fn while this replica holds the fleet's token lock,
// taking it first if need be (waiting for another replica's hold to end);
// fn's context ends when ctx does, or when the lock is lost (fencing).
// Without a token lock (no OpenAPI credentials) fn runs at once.
func (f *Fleet) WithToken(ctx context.Context, fn func(context.Context) error) error {
	if f.tokens == nil {
		return fn(ctx)
	}
	return f.tokens.use(ctx, fn)
}

// CloseTokens ends the token lock's hold at shutdown, revoking its token;
// no hold is taken after.
func (f *Fleet) CloseTokens() {
	if f.tokens != nil {
		f.tokens.close()
	}
}

// use runs fn under a hold (see WithToken).
func (g *tokenGate) use(ctx context.Context, fn func(context.Context) error) error {
	h, err := g.join(ctx)
	if err != nil {
		return err
	}
	defer g.leave(h)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.lost:
			cancel()
		case <-fctx.Done():
		}
	}()
	return fn(fctx)
}

// join returns the current hold with one more user, taking the lock when
// there is none.
func (g *tokenGate) join(ctx context.Context) (*tokenHold, error) {
	for {
		g.mu.Lock()
		if g.stopped {
			g.mu.Unlock()
			return nil, ErrStopped
		}
		if h := g.hold; h != nil && !h.over() {
			h.users++
			g.mu.Unlock()
			return h, nil
		}
		if g.acquiring == nil {
			g.acquiring = make(chan struct{})
			go g.acquire(g.acquiring)
		}
		ch := g.acquiring
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-g.stop:
			return nil, ErrStopped
		}
	}
}

// acquire takes the lock, trying again every fraction of a second while
// another replica holds it, until it has it or the gate is closed.
func (g *tokenGate) acquire(done chan struct{}) {
	defer func() {
		g.mu.Lock()
		g.acquiring = nil
		g.mu.Unlock()
		close(done)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-g.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	waiting := time.Now()
	for ctx.Err() == nil {
		actx, acancel := context.WithTimeout(ctx, g.f.opTimeout())
		rev, err := g.f.kv.Create(actx, g.key, g.f.value())
		acancel()
		if err == nil {
			h := &tokenHold{lost: make(chan struct{}), rev: rev, done: make(chan struct{})}
			g.mu.Lock()
			stopped := g.stopped
			if !stopped {
				g.hold = h
			}
			h.users++ // a hold nobody joins is released after the linger like any other
			g.mu.Unlock()
			go g.renew(h)
			if stopped {
				g.release(h)
				return
			}
			g.leave(h)
			return
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			g.f.log.Warn("fleet: taking the OpenAPI token lock failed; trying again", "err", err)
		} else if time.Since(waiting) > g.f.ttl {
			g.f.log.Info("fleet: waiting for another replica's OpenAPI token lock", "waited", time.Since(waiting).Round(time.Second))
			waiting = time.Now()
		}
		sleep(ctx, 200*time.Millisecond+rand.N(300*time.Millisecond))
	}
}

// renew keeps the lock while h lasts, and ends h when a renewal is refused
// or none succeeded for half the TTL (fencing, as for leases).
func (g *tokenGate) renew(h *tokenHold) {
	defer close(h.done)
	t := time.NewTicker(g.f.renewEvery())
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-h.lost:
			return
		case <-t.C:
		}
		g.mu.Lock()
		rev := h.rev
		g.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.Background(), g.f.opTimeout())
		next, err := g.f.kv.Update(rctx, g.key, g.f.value(), rev)
		cancel()
		switch {
		case err == nil:
			g.mu.Lock()
			h.rev = next
			g.mu.Unlock()
			renewed = time.Now()
		case refused(err) || time.Since(renewed) > g.f.fenceAfter():
			g.f.log.Warn("fleet: the OpenAPI token lock was lost; its token is revoked", "err", err)
			g.mu.Lock()
			h.rev = 0 // lost: not ours to delete
			g.mu.Unlock()
			h.finish()
			return
		}
	}
}

// leave drops a user of h; the last one releases it after tokenLinger.
func (g *tokenGate) leave(h *tokenHold) {
	g.mu.Lock()
	h.users--
	last := h.users == 0
	g.mu.Unlock()
	if !last {
		return
	}
	time.AfterFunc(tokenLinger, func() {
		g.mu.Lock()
		if h.users > 0 {
			g.mu.Unlock()
			return
		}
		if g.hold == h {
			g.hold = nil
		}
		g.mu.Unlock()
		g.release(h)
	})
}

// release revokes the token the hold used and deletes the lock at its
// revision (a lost lock is not deleted: it is another's now).
func (g *tokenGate) release(h *tokenHold) {
	h.finish()
	<-h.done
	ctx, cancel := context.WithTimeout(context.Background(), RevokeTimeout)
	defer cancel()
	if err := g.client.Release(ctx); err != nil {
		g.f.log.Warn("fleet: the OpenAPI token was not revoked; it expires by itself", "err", err)
	}
	g.mu.Lock()
	rev := h.rev
	h.rev = 0 // released once
	g.mu.Unlock()
	if rev == 0 {
		return
	}
	if err := g.f.kv.Delete(ctx, g.key, jetstream.LastRevision(rev)); err != nil {
		g.f.log.Warn("fleet: the OpenAPI token lock was not released; it lapses by its TTL", "err", err)
	}
}

// close ends the hold at shutdown, revoking its token; no hold is taken
// after.
func (g *tokenGate) close() {
	g.mu.Lock()
	if !g.stopped {
		g.stopped = true
		close(g.stop)
	}
	h := g.hold
	g.hold = nil
	g.mu.Unlock()
	if h != nil {
		g.release(h)
	}
}
