// Package bridge connects Yeastar PBX extensions (package pbx) to NATS: one
// supervisor per extension logs in, maps the PBX's notifications to
// versioned CloudEvents on NATS subjects, recovers from every failure the
// PBX protocol knows, and a micro service answers CDR queries on demand.
package bridge

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// Bridge serves a set of extensions of one PBX over one NATS connection.
type Bridge struct {
	cfg      Config
	nc       *nats.Conn
	subjects subjects
	pub      publisher
	cursors  cursorStore
	limiter  *pbxLimiter
	metrics  *metrics
	host     string
	exts     map[string]*extension
	order    []*extension

	inflight chan struct{}
	wg       sync.WaitGroup // request goroutines
	reqCtx   context.Context
}

// New checks the configuration and prepares a bridge; Run starts it.
func New(nc *nats.Conn, cfg Config) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
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
		cfg:      cfg,
		nc:       nc,
		subjects: subjects{prefix: cfg.Prefix},
		metrics:  newMetrics(),
		host:     u.Host,
		exts:     make(map[string]*extension, len(cfg.Extensions)),
		inflight: make(chan struct{}, cfg.MaxInflight),
		limiter:  newPBXLimiter(cfg.PBXRate, cfg.PBXConcurrency),
	}
	for _, c := range cfg.Extensions {
		x := newExtension(b, c)
		b.exts[c.Username] = x
		b.order = append(b.order, x)
	}
	return b, nil
}

// Run serves until ctx ends, then shuts down in order: it stops taking
// requests, lets the requests under way finish, logs every extension out of
// the PBX (bounded by ShutdownTimeout) and returns. Draining the NATS
// connection is the caller's, who owns it.
func (b *Bridge) Run(ctx context.Context) error {
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	b.reqCtx = reqCtx

	if b.cfg.JetStream.Disabled {
		b.pub = &corePublisher{nc: b.nc, metrics: b.metrics}
		b.cursors = &memCursors{}
	} else {
		js, cursors, err := b.setupJetStream(ctx)
		if err != nil {
			return err
		}
		b.pub = &jsPublisher{js: js, ackTimeout: b.cfg.JetStream.AckTimeout, retryMax: 5 * time.Second, metrics: b.metrics}
		b.cursors = cursors
	}
	svc, err := b.startService()
	if err != nil {
		return err
	}
	// Supervisors outlive ctx until the requests under way have finished, so
	// that no request finds its session logged out under it.
	supCtx, stopSupervisors := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSupervisors()
	var sup sync.WaitGroup
	for _, x := range b.order {
		sup.Add(1)
		go func() {
			defer sup.Done()
			x.run(supCtx)
		}()
	}
	<-ctx.Done()
	b.cfg.Logger.Info("shutting down", "extensions", len(b.order))
	stopErr := svc.Stop()
	b.wg.Wait()
	stopSupervisors()
	sup.Wait()
	if stopErr != nil {
		return fmt.Errorf("stop micro service: %w", stopErr)
	}
	return nil
}
