package fleet

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The fleet's mirror of the lease bucket: who owns which lease, which
// replicas are alive. It is a view for balancing and routing requests;
// ownership itself is decided by the bucket's revision-checked writes.

// watch mirrors the bucket: who owns which lease, which replicas are
// alive. It restarts after the watch fails (a NATS outage).
func (f *Fleet) watch(ctx context.Context) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		w, err := f.kv.WatchAll(wctx)
		if err != nil {
			cancel()
			f.log.Warn("fleet: watching the lease bucket failed; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		f.mu.Lock()
		f.owners, f.replicas, f.seen, f.synced = map[string]string{}, map[string]replicaValue{}, map[string]time.Time{}, false
		f.rewatch, f.watchAge = cancel, time.Now()
		f.mu.Unlock()
		for e := range w.Updates() {
			f.apply(e)
		}
		_ = w.Stop()
		cancel()
		if ctx.Err() == nil {
			sleep(ctx, 100*time.Millisecond)
		}
	}
}

// checkWatch restarts a watch that stopped delivering: this replica's own
// heartbeat, written every third of the TTL, has not come back through
// it for a whole TTL.
func (f *Fleet) checkWatch() {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := f.seen[replicaKey(f.replica)]
	if last.IsZero() {
		last = f.watchAge
	}
	if f.rewatch != nil && !f.watchAge.IsZero() && time.Since(last) > f.ttl {
		f.log.Warn("fleet: the lease bucket watch stopped delivering; watching again", "silent_for", time.Since(last).Round(time.Millisecond))
		f.rewatch()
		f.rewatch = nil
	}
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
