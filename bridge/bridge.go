// Package bridge connects Yeastar PBX extensions (package pbx) to NATS: one
// supervisor per extension logs in, maps the PBX's notifications to
// versioned CloudEvents on NATS subjects, recovers from every failure the
// PBX protocol knows, and a micro service answers CDR queries on demand.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbx-bridge/pbx-bridge/bridge/catchup"
	"github.com/pbx-bridge/pbx-bridge/bridge/fleet"
	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
)

// Bridge serves a set of extensions of one PBX over one NATS connection.
type Bridge struct {
	cfg      Config
	nc       *nats.Conn
	subjects subjects
	pub      publisher
	cursors  catchup.Store
	limiter  *pbxLimiter
	metrics  *metrics
	host     string
	set      extensionSet
	openapi  *openapi.Client // nil without OpenAPI credentials
	// liveAPI is the event socket's own OpenAPI client while this replica
	// holds it as the fleet's OpenAPI leader (leadLive), else nil.
	liveAPI atomic.Pointer[openapi.Client]
	fleet   atomic.Pointer[fleet.Fleet] // set by Run, unless Fleet.Enabled is false
	leases  jetstream.KeyValue

	js jetstream.JetStream // nil with JetStream disabled
	// tracker follows the live calls (Events.Enabled), control drives them
	// (AllowCallControl); nil otherwise.
	tracker *livecall.Tracker
	control *livecall.Controller

	// pageSize is the CDR page size the PBX really serves, learned by
	// catch-up and shared by every extension.
	pageSize catchup.PageSize
	// logoutFailures counts the extensions that could not be logged out
	// at shutdown.
	logoutFailures atomic.Int64

	inflight   chan struct{}
	reqMu      sync.Mutex     // guards closing and wg.Add against shutdown
	closing    bool           // shutting down: no new request goroutines
	wg         sync.WaitGroup // request goroutines
	cancelReqs *pbx.Closer    // fired when the requests under way take too long at shutdown
	// shutdownBy bounds the logouts and last events of the shutdown; set
	// before the supervisors are told to stop.
	shutdownBy atomic.Pointer[time.Time]
}

// New checks the configuration and prepares a bridge; Run starts it.
func New(nc *nats.Conn, cfg Config) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	// One CA pool, TLS session cache and getproduct answer for every
	// extension of the PBX (package pbx, "Requests per login").
	shared, err := cfg.PBX.Shared()
	if err != nil {
		return nil, fmt.Errorf("pbx: %w", err)
	}
	cfg.PBX = shared
	if cfg.PBX.HTTPClient == nil {
		// One connection pool to the PBX for every extension, as big as the
		// limiter lets requests run at once.
		hc, err := pbx.NewHTTPClient(cfg.PBX, cfg.PBXConcurrency)
		if err != nil {
			return nil, fmt.Errorf("pbx: %w", err)
		}
		cfg.PBX.HTTPClient = hc
	}
	u, err := url.Parse(cfg.PBX.URL)
	if err != nil {
		return nil, fmt.Errorf("pbx url: %w", err)
	}
	b := &Bridge{
		cancelReqs: pbx.NewCloser(),
		cfg:        cfg,
		nc:         nc,
		subjects:   subjects{prefix: cfg.Prefix, live: cfg.Events.Enabled, calls: cfg.AllowCallControl},
		metrics:    newMetrics(cfg.Metrics.PerExtension),
		host:       u.Host,
		inflight:   make(chan struct{}, cfg.MaxInflight),
		limiter:    newPBXLimiter(cfg.PBXRate, cfg.PBXConcurrency),
	}
	b.set = newExtensionSet(b, cfg.Fleet.Enabled)
	if cfg.OpenAPI.AccessID != "" {
		if b.openapi, err = b.newOpenAPI(); err != nil {
			return nil, err
		}
	}
	if err := b.newLive(); err != nil {
		return nil, err
	}
	if cfg.PBX.InsecureSkipVerify {
		cfg.Logger.Warn("TLS certificate verification of the PBX is off (pbx.insecure_skip_verify): anyone on the way can read the signatures and tokens; use pbx.ca_file instead")
	}
	for _, c := range cfg.Extensions {
		if c.Secret != "" && len(c.Secret) < pbx.MinSignatureLen {
			cfg.Logger.Warn("the secret of this extension is too short to be a login signature minted by the PBX's OpenAPI; logins will likely fail",
				"ext", c.Username, "secret_bytes", len(c.Secret))
		}
		if err := b.add(c, byConfig); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Run serves until ctx ends, then shuts down within ShutdownTimeout: it
// stops taking requests (answering 503 to any still queued), lets the
// requests under way finish (for at most half that time, then cancels
// them), logs every extension out of the PBX and publishes its
// session.stopped. Draining the NATS connection is the caller's, who owns
// it.
func (b *Bridge) Run(ctx context.Context) error {
	defer b.cancelReqs.Fire()
	if err := b.setupDelivery(ctx); err != nil {
		return err
	}
	svc, err := b.startService()
	if err != nil {
		return err
	}
	// Supervisors outlive ctx until the requests under way have finished, so
	// that no request finds its session logged out under it.
	stopSupervisors := pbx.NewCloser()
	defer stopSupervisors.Fire()
	f := b.fleet.Load()
	b.set.startAll(stopSupervisors)
	var loops sync.WaitGroup
	switch {
	case f != nil && (b.cfg.Discovery.Enabled || b.cfg.Events.Enabled):
		loops.Go(func() { f.Lead(ctx) }) // fleetHost.Lead: discovery and the event socket
		if b.cfg.Discovery.Enabled {
			loops.Go(func() { f.FollowLists(ctx) })
		}
	case b.cfg.Discovery.Enabled:
		loops.Go(func() { b.discover(ctx) })
	}
	if b.tracker != nil {
		loops.Go(func() { b.runLive(ctx, b.openapi, b.tracker) })
	}
	// The fleet loop outlives ctx: it renews the leases until every
	// extension has logged out (Drain, in shutdown), else another replica
	// could log in beside one still logged in.
	fleetCtx, stopFleet := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFleet()
	var fleetLoop sync.WaitGroup
	if f != nil {
		fleetLoop.Go(func() { f.Run(fleetCtx) })
	}
	<-ctx.Done()
	if f != nil {
		f.StopTaking()
	}
	loops.Wait()
	stopErr := b.shutdown(svc, func() {
		stopSupervisors.Fire()
		b.set.running.Wait()
		stopFleet()
		fleetLoop.Wait()
	})
	if stopErr != nil {
		return fmt.Errorf("stop micro service: %w", stopErr)
	}
	return nil
}

// setupDelivery opens what the events go through (JetStream, or core NATS),
// the cursor store and, in a fleet, this replica's part of it.
func (b *Bridge) setupDelivery(ctx context.Context) error {
	if b.cfg.JetStream.Disabled {
		b.pub = &corePublisher{nc: b.nc, metrics: b.metrics}
		b.cursors = &catchup.MemStore{}
	} else if err := b.setupJetStreamRetrying(ctx); err != nil {
		return err
	}
	if b.cfg.Fleet.Enabled {
		f, err := b.startFleet()
		if err != nil {
			return err
		}
		b.fleet.Store(f)
	}
	return nil
}

// shutdown stops the requests, logs every extension out (stopped: the
// supervisors' and the fleet loop's end) and revokes what the OpenAPI
// holds, within ShutdownTimeout (the revoke on its own deadline). It
// returns the micro service's stop error.
func (b *Bridge) shutdown(svc micro.Service, stopped func()) error {
	f := b.fleet.Load()
	b.set.close()
	served := len(b.set.list())
	b.cfg.Logger.Info("shutting down", "extensions", served, "timeout", b.cfg.ShutdownTimeout)
	deadline := time.Now().Add(b.cfg.ShutdownTimeout)
	b.shutdownBy.Store(&deadline)
	b.reqMu.Lock()
	b.closing = true
	b.reqMu.Unlock()
	stopErr := svc.Stop()
	requestsDone := make(chan struct{})
	go func() { b.wg.Wait(); close(requestsDone) }()
	select {
	case <-requestsDone:
	case <-time.After(b.cfg.ShutdownTimeout / 2):
		b.cfg.Logger.Warn("requests still under way at shutdown: cancelling them")
		b.cancelReqs.Fire()
		<-requestsDone
	}
	// Every extension logs out now, whatever their number: the limiter's
	// rate (a budget for a PBX that carries calls) would let only about
	// rate x ShutdownTimeout of them through; its concurrency still holds.
	b.limiter.unthrottle()
	released := 0
	if f != nil {
		released = f.Drain()
	}
	stopped()
	if n := b.logoutFailures.Load(); n > 0 {
		b.cfg.Logger.Warn("extensions not logged out at shutdown: the PBX keeps their logins until they expire",
			"not_logged_out", n, "extensions", served, "timeout", b.cfg.ShutdownTimeout)
	}
	if f != nil {
		f.CloseTokens()
		f.Shutdown(released)
	}
	if b.openapi != nil {
		// Its own deadline: the logouts may have used up the shutdown's.
		rctx, cancel := context.WithTimeout(context.Background(), fleet.RevokeTimeout)
		if err := b.openapi.Close(rctx); err != nil {
			b.cfg.Logger.Warn("OpenAPI token not revoked at shutdown", "err", err)
		}
		cancel()
	}
	return stopErr
}

// setupJetStreamRetrying sets up the stream and the cursor bucket, retrying
// while NATS is unreachable (the bridge may start before NATS does), until
// ctx ends. A configuration problem (CheckOnly and a wrong stream) is not
// retried.
func (b *Bridge) setupJetStreamRetrying(ctx context.Context) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 200 * time.Millisecond
	bo.MaxInterval = 10 * time.Second
	bo.MaxElapsedTime = 0
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		js, cursors, err := b.setupJetStream(actx)
		if err == nil && b.cfg.Fleet.Enabled {
			b.leases, err = fleet.OpenBucket(actx, js, b.cfg.Fleet, b.cfg.JetStream.Replicas)
		}
		cancel()
		if err == nil {
			b.js = js
			b.pub = &jsPublisher{js: js, ackTimeout: b.cfg.JetStream.AckTimeout, retryMax: 5 * time.Second,
				metrics: b.metrics, log: b.cfg.Logger, ensure: b.ensureStream}
			b.cursors = cursors
			return nil
		}
		var ce *configError
		if errors.As(err, &ce) || ctx.Err() != nil {
			return err
		}
		d := bo.NextBackOff()
		if attempt == 1 || attempt%10 == 0 {
			b.cfg.Logger.Warn("JetStream not reachable; retrying", "err", err, "attempt", attempt, "retry_in", d)
		}
		if !sleep(ctx, d) {
			return fmt.Errorf("jetstream setup: %w (gave up at shutdown)", err)
		}
	}
}
