package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pbx-bridge/pbx-bridge/bridge/kvkey"
)

// The OpenAPI leader. In a fleet one replica, the holder of the leader
// lease (a key of the lease bucket, taken with Create and renewed at its
// revision like an extension's lease), reads the PBX's extension list for
// the whole fleet and keeps it in the bucket under the list key: extension
// numbers only, never a credential. Every replica, the leader too, follows
// that key and serves what it lists, through the same door as a lone
// bridge's discovery (applyDiscovered). The bucket's MaxAge (the lease
// TTL) would let the key lapse, so the leader writes it again with each
// renewal; a list that lapsed (the leader died) changes nothing until the
// next leader, which reads the PBX at once, writes a new one.
//
// The leader lease is also where the OpenAPI's other fleet-wide duty
// lives, the event socket of live calls (one per PBX): the host runs both
// under the leadership's context, which ends when the lease is lost or not
// renewed for half the TTL (fenced, as an extension is: another replica
// may take the lease at the TTL), and the lease is deleted only once the
// duties have ended, the socket closed and its token revoked.

// discoveredList is the value of the list key.
type discoveredList struct {
	Leader string    `json:"leader"`
	At     time.Time `json:"at"` // when the PBX was read
	// Complete is false for a listing the PBX could not give whole: it
	// adds extensions, and removes none.
	Complete bool     `json:"complete"`
	Numbers  []string `json:"numbers"`
}

func (f *Fleet) leaderKey() string { return "openapi.leader." + kvkey.Host(f.pbxHost) }
func (f *Fleet) listKey() string   { return "discovery." + kvkey.Host(f.pbxHost) }

// leader is the leader lease's state, used by lead's goroutine only but
// renewed and fenced, which the fence reads and sets.
type leader struct {
	rev     uint64
	renewed atomic.Int64 // unix nanoseconds of the last renewal
	fenced  atomic.Bool  // fenceLead ended the leadership
	stop    context.CancelFunc
	loops   sync.WaitGroup
}

func (l *leader) renewedAt() time.Time { return time.Unix(0, l.renewed.Load()) }
func (l *leader) setRenewed()          { l.renewed.Store(time.Now().UnixNano()) }

// Lead takes the leader lease whenever nobody holds it, and while it holds
// it runs the leader's duties (Host.Lead), until ctx ends; then it hands
// the lease over.
func (f *Fleet) Lead(ctx context.Context) {
	var l leader
	end := func() {
		if l.stop != nil {
			l.stop()
			l.loops.Wait()
			l.stop = nil
		}
	}
	defer func() {
		end()
		if l.rev != 0 {
			f.resign(&l)
		}
	}()
	t := time.NewTicker(f.renewEvery())
	defer t.Stop()
	for {
		switch {
		case l.stop == nil:
			f.takeLead(ctx, &l)
		case l.fenced.Load() && ctx.Err() == nil:
			// Fenced: the duties have stopped; the lease is given up, not
			// kept without them.
			end()
			f.resign(&l)
		case !f.keepLead(ctx, &l):
			end()
			l.rev = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// takeLead takes the leader lease if nobody holds it, and starts discovery.
func (f *Fleet) takeLead(ctx context.Context, l *leader) {
	actx, cancel := context.WithTimeout(ctx, f.opTimeout())
	rev, err := f.kv.Create(actx, f.leaderKey(), f.value())
	cancel()
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) && ctx.Err() == nil {
			f.log.Warn("fleet: taking the OpenAPI leader lease failed; trying again", "err", err)
		}
		return
	}
	l.rev = rev
	l.setRenewed()
	lctx, stop := context.WithCancel(ctx)
	l.stop = stop
	l.fenced.Store(false)
	f.log.Info("fleet: this replica is the OpenAPI leader: it reads the extension list and holds the event socket for the fleet")
	l.loops.Go(func() { f.host.Lead(lctx) })
	l.loops.Go(func() { f.fenceLead(lctx, l, stop) })
}

// resign deletes the leader lease at the revision this replica wrote, so
// that another replica takes it at once rather than at the TTL.
func (f *Fleet) resign(l *leader) {
	dctx, cancel := context.WithTimeout(context.Background(), f.opTimeout())
	defer cancel()
	if err := f.kv.Delete(dctx, f.leaderKey(), jetstream.LastRevision(l.rev)); err != nil {
		f.log.Info("fleet: the OpenAPI leader lease could not be given up; it lapses at its TTL", "err", err)
	}
	l.rev = 0
}

// fenceLead ends the leadership (stop) once the lease went half its TTL
// without a renewal, within a tenth of the TTL: the renewals run on the
// lead loop's ticker, which a stuck KV write holds up.
func (f *Fleet) fenceLead(ctx context.Context, l *leader, stop context.CancelFunc) {
	t := time.NewTicker(f.fenceCheck())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if since := time.Since(l.renewedAt()); since > f.fenceAfter() {
			f.log.Warn("fleet: the OpenAPI leader lease was not renewed for half its TTL; leaving the lead (fencing)",
				"since_renewed", since.Round(time.Millisecond))
			l.fenced.Store(true)
			stop()
			return
		}
	}
}

// keepLead renews the leader lease and writes the list again; false when
// the lease is lost (refused, or not renewed for half the TTL).
func (f *Fleet) keepLead(ctx context.Context, l *leader) bool {
	rctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	rev, err := f.kv.Update(rctx, f.leaderKey(), f.value(), l.rev)
	cancel()
	switch {
	case err == nil:
		l.rev = rev
		l.setRenewed()
	case refused(err) || time.Since(l.renewedAt()) > f.fenceAfter():
		if ctx.Err() == nil {
			f.log.Warn("fleet: the OpenAPI leader lease was lost", "err", err)
		}
		return false
	default:
		return true
	}
	f.mu.Lock()
	list := f.lastList
	f.mu.Unlock()
	if list != nil {
		if err := f.putList(ctx, *list); err != nil && ctx.Err() == nil {
			f.log.Warn("fleet: writing the extension list again failed", "err", err)
		}
	}
	return true
}

// PublishList is what the leader's discovery does with a reading: it
// keeps it in the bucket, for every replica to follow.
func (f *Fleet) PublishList(ctx context.Context, numbers []string, complete bool) error {
	list := discoveredList{Leader: f.replica, At: time.Now().UTC(), Complete: complete, Numbers: numbers}
	f.mu.Lock()
	f.lastList = &list
	f.mu.Unlock()
	return f.putList(ctx, list)
}

func (f *Fleet) putList(ctx context.Context, list discoveredList) error {
	v, err := json.Marshal(list)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	defer cancel()
	_, err = f.kv.Put(pctx, f.listKey(), v)
	return err
}

// listArrived takes the list key from the watch (f.mu held): the newest
// list replaces one not applied yet.
func (f *Fleet) listArrived(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return // lapsed: the set stays as it is until a new list
	}
	var list discoveredList
	if err := json.Unmarshal(e.Value(), &list); err != nil {
		f.log.Error("fleet: the extension list in the lease bucket is unreadable; ignored", "err", err)
		return
	}
	select {
	case <-f.lists:
	default:
	}
	f.lists <- list
}

// FollowLists applies each new list read by the leader, until ctx ends.
// A rewrite of the same reading is not applied again.
func (f *Fleet) FollowLists(ctx context.Context) {
	var applied time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case list := <-f.lists:
			if list.At.Equal(applied) {
				continue
			}
			applied = list.At
			if err := f.host.ApplyList(list.Numbers, list.Complete); err != nil && ctx.Err() == nil {
				f.log.Warn("fleet: applying the extension list failed", "err", err)
			}
		}
	}
}
