package bridge

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbx-bridge/pbx-bridge/bridge/fleet"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
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

func (h fleetHost) Candidates() []string    { return h.b.set.candidates() }
func (h fleetHost) Wanted(ext string) bool  { return h.b.set.wanted(ext) }
func (h fleetHost) Start(ext string) bool   { return h.b.set.run(ext) }
func (h fleetHost) Halt(ext, reason string) { h.b.set.halt(ext, reason) }
func (h fleetHost) ApplyList(numbers []string, complete bool) error {
	return h.b.applyDiscovered(numbers, complete)
}

// Lead runs the OpenAPI leader's duties, those the configuration turns
// on, until ctx ends.
func (h fleetHost) Lead(ctx context.Context) {
	var duties sync.WaitGroup
	if h.b.cfg.Discovery.Enabled {
		duties.Go(func() { h.b.discover(ctx) })
	}
	if h.b.cfg.Events.Enabled {
		duties.Go(func() { h.b.leadLive(ctx) })
	}
	duties.Wait()
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

// withOpenAPI runs fn with an OpenAPI client: the bridge's, directly on a
// lone bridge (which keeps one token, refreshed) and under the fleet's
// token lock in a fleet; but the event socket's on the replica that holds
// it (the fleet's OpenAPI leader with events on), whose token is alive
// anyway. So the leader takes no second token, and a leader killed
// outright leaves one token behind, not two.
func (b *Bridge) withOpenAPI(ctx context.Context, fn func(context.Context, *openapi.Client) error) error {
	if api := b.liveAPI.Load(); api != nil {
		return fn(ctx, api)
	}
	if f := b.fleet.Load(); f != nil {
		return f.WithToken(ctx, func(ctx context.Context) error { return fn(ctx, b.openapi) })
	}
	return fn(ctx, b.openapi)
}

// sign mints ext's login signature (see withOpenAPI).
func (b *Bridge) sign(ctx context.Context, ext string) (string, error) {
	var sign string
	err := b.withOpenAPI(ctx, func(ctx context.Context, api *openapi.Client) error {
		var err error
		sign, err = api.Sign(ctx, ext)
		return err
	})
	return sign, err
}
