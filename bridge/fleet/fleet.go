package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pbx-bridge/pbx-bridge/bridge/kvkey"
)

// A fleet is several bridges with the same configuration on one NATS
// cluster. Each extension is owned by exactly one live replica at a time,
// through a lease in a JetStream KV bucket whose own TTL (MaxAge) is the
// lease: a per-key TTL cannot be renewed (an update drops it), a bucket's
// MaxAge counts from each key's last write. A lease is taken with Create,
// renewed with a revision-checked Update every third of the TTL, and
// handed over with a revision-checked Delete. The bucket's limit markers
// make a lapsed lease visible to every replica's watch at once.
//
// Fencing: a replica runs an extension's session only while it holds the
// lease, and stops it (socket closed first, then logout) when a renewal is
// refused, or when no renewal succeeded for half the TTL, which is before
// the lease can lapse on the server as long as the replicas' and the
// servers' clocks run at rates within a factor of two of each other. The
// cursor write is revision-checked as well, so a replica that lost a lease
// cannot move a cursor. docs/deploy.md says what a partition does.

// Config makes the bridge one replica of a fleet. Its defaults and checks
// are the bridge's (bridge.Config), with the rest of the configuration.
type Config struct {
	Enabled bool
	// Replica names this replica (default <hostname>-<pid>); unique in
	// the fleet.
	Replica string
	// LeaseBucket is the KV bucket of the leases and the replicas'
	// heartbeats (default "pbx_bridge_leases").
	LeaseBucket string
	// LeaseTTL is how long a lease lives without renewal (default 15s): a
	// dead replica's extensions are taken over after about this long.
	LeaseTTL time.Duration
	// ReleaseOfflineAfter: a lease whose extension has not been online for
	// this long (its logins fail on this replica: the PBX unreachable or
	// refusing it, its OpenAPI client in back-off) is handed to another
	// live replica (default 1m, at least LeaseTTL), unless none is.
	ReleaseOfflineAfter time.Duration
	// OfflineCooldown is how long this replica then leaves the extension
	// to the others (default 10m).
	OfflineCooldown time.Duration
}

// ForwardedHeader marks a request handed from one replica to the owner of
// its extension; the owner answers it, and never hands it on.
const ForwardedHeader = "Pbx-Fleet-Forwarded"

// StopTaking makes the replica take no lease and hand none over from now
// on: the bridge is shutting down (Drain follows).
func (f *Fleet) StopTaking() { f.draining.Store(true) }

// sleep waits d, or less if ctx ends first (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// leaseValue is a lease's value: who holds it, since when.
type leaseValue struct {
	Replica string    `json:"replica"`
	Since   time.Time `json:"since"`
}

// replicaValue is a replica's heartbeat: it lives as long as a lease and
// is renewed with the leases.
type replicaValue struct {
	Replica string    `json:"replica"`
	Inbox   string    `json:"inbox"` // where requests for its extensions reach it
	Owned   []string  `json:"owned"`
	At      time.Time `json:"at"`
	// Declining counts the extensions this replica leaves to the others
	// after failing to bring them online (OfflineCooldown): the others then
	// share the extensions among themselves as if it were not there.
	Declining int `json:"declining,omitempty"`
}

// lease is one lease this replica holds.
type lease struct {
	key      string
	rev      uint64
	renewed  time.Time // last successful write, by the local clock
	acquired time.Time
	// releasing: the extension is being handed over. Its lease is still
	// renewed (and fenced) until the logout has ended, and only then
	// deleted, so that the next owner never logs in beside it.
	releasing bool
	renewing  int // renewals under way (under fleet.mu; fleet.idle says when none is)
}

// The lease TTL's fractions, in one place: renewals every third, a write's
// timeout a sixth (two can fail before fencing), fencing at half (before
// the lease can lapse even with clocks running at rates within a factor
// of two), the fence checked every tenth.
func (f *Fleet) renewEvery() time.Duration { return f.ttl / 3 }
func (f *Fleet) opTimeout() time.Duration  { return f.ttl / 6 }
func (f *Fleet) fenceAfter() time.Duration { return f.ttl / 2 }
func (f *Fleet) fenceCheck() time.Duration { return f.ttl / 10 }

// Host is what the fleet needs of the bridge it runs in.
type Host interface {
	// Candidates are the extensions the bridge would serve, sorted.
	Candidates() []string
	// Wanted reports whether ext is still a candidate.
	Wanted(ext string) bool
	// Start starts ext's session (the lease is held); false if it cannot.
	Start(ext string) bool
	// Halt stops ext's session and waits until it has logged out.
	Halt(ext, reason string)
	// DownFor is how long ext has been trying to get online (0: online,
	// or not running).
	DownFor(ext string) time.Duration
	// Forwarded answers a request another replica handed over, sent to
	// subject.
	Forwarded(subject string, m *nats.Msg)
	// Lead runs the OpenAPI leader's duties until ctx ends: discovery,
	// which hands each reading to PublishList, and the event socket of live
	// calls. It returns once they have ended (the socket closed, its token
	// revoked).
	Lead(ctx context.Context)
	// ApplyList serves what the leader's extension list says.
	ApplyList(numbers []string, complete bool) error
}

// Metrics is told what the leases do.
type Metrics interface {
	LeaseAcquired()
	LeaseRenewed(took time.Duration)
	LeaseLost()
	HandOff()
	Forwarded()
	Leases(held int)
}

// Fleet is this replica's part of a fleet.
type Fleet struct {
	host    Host
	metrics Metrics
	nc      *nats.Conn
	cfg     Config
	pbxHost string // the PBX's host, in the key names
	kv      jetstream.KeyValue
	replica string
	inbox   string
	ttl     time.Duration
	log     *slog.Logger
	kick    chan struct{} // a lease lapsed or was released: look now
	sub     *nats.Subscription
	// draining: the bridge is shutting down; leases are renewed until
	// each extension is logged out, but none is taken or handed over.
	draining atomic.Bool
	handing  sync.WaitGroup // hand-offs under way (handOver)
	idle     *sync.Cond     // on mu: a lease's renewals under way ended

	mu       sync.Mutex
	held     map[string]*lease       // by extension number
	owners   map[string]string       // lease key -> replica, from the watch
	replicas map[string]replicaValue // replica key -> heartbeat, from the watch
	seen     map[string]time.Time    // replica key -> when its last heartbeat arrived, by the local clock
	synced   bool                    // the watch has delivered the bucket's initial state
	leader   string                  // the OpenAPI leader, from the watch ("" if none)
	// rewatch ends the current watch, so that it starts again: a watch
	// whose consumer died with a NATS node stops delivering without
	// closing. The replica sees it by its own heartbeats going missing.
	rewatch  context.CancelFunc
	watchAge time.Time // when the current watch started (or was last judged silent)
	// heartbeatOK is when this replica's heartbeat was last written: a
	// watch is judged silent only against heartbeats that were written.
	heartbeatOK time.Time

	// tokens is the fleet's token lock (nil without OpenAPI credentials);
	// lists brings the OpenAPI leader's extension lists from the watch, and
	// lastList (under mu) is the leader's own newest reading.
	tokens   *tokenGate
	lists    chan discoveredList
	lastList *discoveredList

	// cooling: extensions this replica released after they stayed offline,
	// and until when it leaves them to the others (under mu).
	cooling map[string]time.Time
}

// leaseKey names the lease of ext on this bridge's PBX.
func (f *Fleet) leaseKey(ext string) string { return "lease." + kvkey.Ext(f.pbxHost, ext) }

func replicaKey(replica string) string { return "replica." + kvkey.Token(replica) }

// OpenBucket makes (or updates) the lease bucket: its TTL is the lease, and
// its limit markers tell watchers of every lapse.
func OpenBucket(ctx context.Context, js jetstream.JetStream, fc Config, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         fc.LeaseBucket,
		Description:    "pbx-bridge: one lease per extension, and the replicas' heartbeats",
		History:        1,
		TTL:            fc.LeaseTTL,
		LimitMarkerTTL: fc.LeaseTTL,
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet lease bucket %s: %w", fc.LeaseBucket, err)
	}
	return kv, nil
}

// Options are the parts of a Fleet that are not its configuration.
type Options struct {
	NC      *nats.Conn
	KV      jetstream.KeyValue // the lease bucket (OpenBucket)
	PBXHost string             // the PBX's host: the keys are the PBX's
	Prefix  string             // the subject prefix: replicas of other prefixes are other fleets
	Host    Host
	Metrics Metrics
	Log     *slog.Logger
	// Tokens, when set, is the OpenAPI client whose tokens the fleet's
	// token lock rations (see token.go).
	Tokens Revoker
}

// New makes this replica's part of the fleet and subscribes its inbox for
// the requests other replicas hand to it.
func New(fc Config, o Options) (*Fleet, error) {
	h := sha256.Sum256([]byte(o.Prefix + "\x00" + fc.Replica))
	f := &Fleet{
		host: o.Host, metrics: o.Metrics, nc: o.NC, cfg: fc, pbxHost: o.PBXHost,
		kv: o.KV, replica: fc.Replica, ttl: fc.LeaseTTL,
		inbox: "_pbx_bridge.fleet." + hex.EncodeToString(h[:8]),
		log:   o.Log.With("replica", fc.Replica),
		kick:  make(chan struct{}, 1),
		held:  map[string]*lease{}, owners: map[string]string{}, replicas: map[string]replicaValue{},
		seen: map[string]time.Time{}, lists: make(chan discoveredList, 1), cooling: map[string]time.Time{},
	}
	f.idle = sync.NewCond(&f.mu)
	if o.Tokens != nil {
		f.tokens = newTokenGate(f, o.Tokens)
	}
	var err error
	f.sub, err = o.NC.Subscribe(f.inbox, f.serveForwarded)
	if err != nil {
		return nil, fmt.Errorf("fleet inbox: %w", err)
	}
	return f, nil
}

// Run keeps this replica's share of the leases until ctx ends: it watches
// the bucket, and every third of the TTL (or at once when a lease lapsed)
// renews what it holds, drops what it cannot renew, and takes or hands
// over leases towards its fair share.
func (f *Fleet) Run(ctx context.Context) {
	go f.watch(ctx)
	go f.fence(ctx)
	t := time.NewTicker(f.renewEvery())
	defer t.Stop()
	// The first tick only says this replica is here: replicas started
	// together then see each other before they take leases, rather than
	// the first taking everything and handing most of it over again.
	f.heartbeat(ctx)
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	f.tick(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
		f.tick(ctx)
	}
}

// tick renews, fences, heartbeats and balances once.
func (f *Fleet) tick(ctx context.Context) {
	f.renew(ctx)
	f.releaseOffline()
	f.heartbeat(ctx)
	f.checkWatch()
	f.mu.Lock()
	synced := f.synced
	f.mu.Unlock()
	if synced && !f.draining.Load() {
		f.balance(ctx)
	}
	f.metrics.Leases(f.heldCount())
}

func (f *Fleet) heldCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

// value is this replica's lease value.
func (f *Fleet) value() []byte {
	v, _ := json.Marshal(leaseValue{Replica: f.replica, Since: time.Now().UTC()})
	return v
}

// heartbeat renews this replica's key, so that the others count it live.
func (f *Fleet) heartbeat(ctx context.Context) {
	f.mu.Lock()
	owned := make([]string, 0, len(f.held))
	for ext := range f.held {
		owned = append(owned, ext)
	}
	f.mu.Unlock()
	if f.nc.Status() != nats.CONNECTED {
		return
	}
	v, _ := json.Marshal(replicaValue{Replica: f.replica, Inbox: f.inbox, Owned: sortedStrings(owned), At: time.Now().UTC(),
		Declining: f.declining()})
	hctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	defer cancel()
	_, err := f.kv.Put(hctx, replicaKey(f.replica), v)
	switch {
	case err == nil:
		f.mu.Lock()
		f.heartbeatOK = time.Now()
		f.mu.Unlock()
	case ctx.Err() == nil:
		f.log.Warn("fleet: heartbeat failed", "err", err)
	}
}

// Shutdown deletes this replica's heartbeat, once Run has ended.
func (f *Fleet) Shutdown(released int) {
	ctx, cancel := context.WithTimeout(context.Background(), f.renewEvery())
	defer cancel()
	_ = f.kv.Delete(ctx, replicaKey(f.replica))
	f.log.Info("fleet: leases released", "extensions", released)
}
