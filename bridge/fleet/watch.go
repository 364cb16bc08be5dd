package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The fleet's mirror of the lease bucket: who owns which lease, which
// replicas are alive. It is a view for balancing and routing requests;
// ownership itself is decided by the bucket's revision-checked writes.

// watch mirrors the bucket: who owns which lease, which replicas are
// alive. It starts again whenever the watch ends, whether nats.go closed it
// (its ordered consumer could not be made again) or checkWatch found it
// silent; every restart is logged with its reason.
func (f *Fleet) watch(ctx context.Context) {
	for ctx.Err() == nil {
		w, wctx, err := f.startWatch(ctx)
		if err != nil {
			f.log.Warn("fleet: watching the lease bucket failed; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		why := f.follow(wctx, w)
		if ctx.Err() != nil {
			return
		}
		f.log.Warn("fleet: the lease bucket watch ended; watching again", "why", why)
		sleep(ctx, 100*time.Millisecond)
	}
}

// startWatch opens a watch of the whole bucket and resets the mirror. The
// watch's context is also the deadline of its creation: a consumer create
// request that gets no answer (a NATS node stopped while it was on its
// way) would otherwise wait for ever, with nothing left to notice. The
// mirror is reset before the watch opens, so checkWatch times this attempt
// too.
func (f *Fleet) startWatch(ctx context.Context) (jetstream.KeyWatcher, context.Context, error) {
	wctx, cancel := context.WithCancel(ctx)
	f.mu.Lock()
	f.owners, f.replicas, f.seen, f.synced, f.leader = map[string]string{}, map[string]replicaValue{}, map[string]time.Time{}, false, ""
	f.rewatch, f.watchAge = cancel, time.Now()
	f.mu.Unlock()
	deadline := time.AfterFunc(f.ttl, cancel)
	w, err := f.kv.WatchAll(wctx)
	if !deadline.Stop() && err == nil {
		err = errors.New("the watch took longer than the lease TTL to open")
		_ = w.Stop()
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return w, wctx, nil
}

// follow applies the watch's updates until it closes or wctx ends (the
// replica stops, or checkWatch found it silent), and says which. It does
// not wait for the updates channel to close after a cancel: a watch whose
// consumer died may never close it. What the watch still holds is drained
// in the background until nats.go closes it, so that its delivery
// goroutine, which blocks on a full channel, is never wedged.
func (f *Fleet) follow(wctx context.Context, w jetstream.KeyWatcher) string {
	defer func() {
		go func() {
			_ = w.Stop()
			for range w.Updates() {
			}
		}()
	}()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return "closed by the client (its consumer could not be made again)"
			}
			f.apply(e)
		case <-wctx.Done():
			return "silent: this replica's own heartbeats stopped coming back"
		}
	}
}

// checkWatch restarts a watch that stopped delivering: this replica's own
// heartbeat, written every third of the TTL, has not come back through it
// for a whole TTL while the heartbeats were being written. Two clocks say
// so, both this replica's: when the last one arrived, and when the last
// one that arrived was written (a watch replaying an old backlog delivers
// now what was written long ago). It stays armed: a watch that does not
// start again is cancelled again a TTL later.
func (f *Fleet) checkWatch() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rewatch == nil || f.watchAge.IsZero() || time.Since(f.watchAge) <= f.ttl {
		return
	}
	self := replicaKey(f.replica)
	last := f.seen[self]
	if hb, ok := f.replicas[self]; ok && hb.At.Before(last) {
		last = hb.At
	}
	if f.heartbeatOK.Sub(last) <= f.ttl {
		return // nothing newer was written: NATS is down, not the watch
	}
	f.log.Warn("fleet: the lease bucket watch stopped delivering; watching again",
		"silent_for", time.Since(last).Round(time.Millisecond), "watch_age", time.Since(f.watchAge).Round(time.Millisecond))
	f.rewatch()
	f.watchAge = time.Now() // the next check waits a TTL for the new watch
}

// apply takes one watch update into the mirror.
func (f *Fleet) apply(e jetstream.KeyValueEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e == nil {
		f.synced = true
		f.poke()
		return
	}
	gone := e.Operation() != jetstream.KeyValuePut
	switch key := e.Key(); {
	case key == f.listKey():
		f.listArrived(e)
	case key == f.leaderKey():
		var v leaseValue
		if gone || json.Unmarshal(e.Value(), &v) != nil {
			v.Replica = ""
		}
		f.leader = v.Replica
	case strings.HasPrefix(key, "lease."):
		if gone {
			delete(f.owners, key)
			f.poke()
			return
		}
		var v leaseValue
		if json.Unmarshal(e.Value(), &v) == nil {
			f.owners[key] = v.Replica
		}
	case strings.HasPrefix(key, "replica."):
		if gone {
			delete(f.replicas, key)
			delete(f.seen, key)
			f.poke()
			return
		}
		var v replicaValue
		if json.Unmarshal(e.Value(), &v) == nil {
			if _, known := f.replicas[key]; !known {
				f.poke() // a replica joined: the fair share changed
			}
			f.replicas[key], f.seen[key] = v, time.Now()
		}
	}
}

func (f *Fleet) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// alive reports whether the replica of key sent a heartbeat lately: within
// three quarters of the TTL, i.e. it missed at most one (they come every
// third). A replica that died keeps its key until the TTL; counting it
// live until then would keep the others below its share and its
// extensions down. f.mu must be held.
func (f *Fleet) alive(key string) bool {
	seen, ok := f.seen[key]
	return ok && time.Since(seen) < f.ttl*3/4
}
