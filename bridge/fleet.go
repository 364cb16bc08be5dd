package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbx-bridge/pbx-bridge/bridge/fleet"
)

// The bridge's side of a fleet (bridge/fleet): what the leases drive, and
// the OpenAPI use the fleet's token lock rations.

// startFleet makes this replica's part of the fleet; the lease bucket is
// open by then (setupJetStreamRetrying).
func (b *Bridge) startFleet() (*fleet.Fleet, error) {
	o := fleet.Options{NC: b.nc, KV: b.leases, PBXHost: b.host, Prefix: b.cfg.Prefix,
		Host: fleetHost{b}, Metrics: fleetMetrics{b.metrics}, Log: b.cfg.Logger}
	if b.openapi != nil {
		o.Tokens = b.openapi
	}
	f, err := fleet.New(b.cfg.Fleet, o)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return f, nil
}

// fleetHost is the bridge as the fleet drives it.
type fleetHost struct{ b *Bridge }

func (h fleetHost) Candidates() []string         { return h.b.set.candidates() }
func (h fleetHost) Wanted(ext string) bool       { return h.b.set.wanted(ext) }
func (h fleetHost) Start(ext string) bool        { return h.b.set.run(ext) }
func (h fleetHost) Halt(ext, reason string)      { h.b.set.halt(ext, reason) }
func (h fleetHost) Discover(ctx context.Context) { h.b.discover(ctx) }
func (h fleetHost) ApplyList(numbers []string, complete bool) error {
	return h.b.applyDiscovered(numbers, complete)
}

func (h fleetHost) DownFor(ext string) time.Duration {
	if x := h.b.set.get(ext); x != nil {
		return x.downFor()
	}
	return 0
}

// Forwarded answers a request another replica handed over, directly to
// its requester.
func (h fleetHost) Forwarded(subject string, m *nats.Msg) {
	ep, ok := h.b.endpointOf(subject)
	if !ok {
		return
	}
	to := directReplier{nc: h.b.nc, subject: m.Reply}
	h.b.serveRequest(ep.name, ep.schema, ep.handle, subject, m.Data, micro.Headers(m.Header), to, m.Reply)
}

// fleetMetrics counts what the leases do.
type fleetMetrics struct{ m *metrics }

func (f fleetMetrics) LeaseAcquired()                  { f.m.leaseAcquired() }
func (f fleetMetrics) LeaseRenewed(took time.Duration) { f.m.leaseRenewed(took) }
func (f fleetMetrics) LeaseLost()                      { f.m.leaseLost() }
func (f fleetMetrics) HandOff()                        { f.m.handOff() }
func (f fleetMetrics) Forwarded()                      { f.m.forwarded() }
func (f fleetMetrics) Leases(held int)                 { f.m.setLeases(held) }

// withOpenAPI runs fn with the bridge's OpenAPI client: directly on a lone
// bridge (which keeps one token, refreshed), under the fleet's token lock
// in a fleet.
func (b *Bridge) withOpenAPI(ctx context.Context, fn func(context.Context) error) error {
	if f := b.fleet.Load(); f != nil {
		return f.WithToken(ctx, fn)
	}
	return fn(ctx)
}

// sign mints ext's login signature (see withOpenAPI).
func (b *Bridge) sign(ctx context.Context, ext string) (string, error) {
	var sign string
	err := b.withOpenAPI(ctx, func(ctx context.Context) error {
		var err error
		sign, err = b.openapi.Sign(ctx, ext)
		return err
	})
	return sign, err
}
