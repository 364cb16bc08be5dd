package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
)

// newOpenAPI makes the bridge's one OpenAPI client: one access token for
// every extension, on the same connection pool and request limiter as the
// sessions of the PBX.
func (b *Bridge) newOpenAPI() (*openapi.Client, error) {
	m := b.metrics
	return openapi.New(openapi.Config{
		URL:            b.cfg.PBX.URL,
		AccessID:       b.cfg.OpenAPI.AccessID,
		AccessKey:      b.cfg.OpenAPI.AccessKey,
		HTTPClient:     b.cfg.PBX.HTTPClient,
		Limiter:        b.limiter,
		RequestTimeout: b.cfg.PBX.RequestTimeout,
		Logger:         b.cfg.Logger,
		Hooks: openapi.Hooks{
			Request:        m.openAPIRequest,
			TokenRefreshed: m.tokenRefreshed,
		},
	})
}

// discover serves the PBX's extensions that match the discovery patterns,
// reading the extension list at once and then every Discovery.Interval
// until ctx ends. Each reading starts the extensions that appeared and
// stops those that disappeared (session.stopped, reason "removed"),
// leaving the others undisturbed; extensions listed in the configuration
// are served whatever the list says.
func (b *Bridge) discover(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	refused := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := b.discoverOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, openapi.ErrExtensionListRefused):
			b.metrics.discoveryRun("refused")
			if !refused {
				b.cfg.Logger.Error("discovery: the PBX refuses to list its extensions to these OpenAPI credentials; "+
					"use API credentials (PBX web portal, Integrations > API) for pbx.openapi, or list the extensions under extensions. "+
					"The configured extensions are still served", "err", err)
			}
			refused = true
		case err != nil:
			b.metrics.discoveryRun("failed")
			b.cfg.Logger.Warn("discovery: the extension list could not be read; trying again at the next interval", "err", err, "interval", b.cfg.Discovery.Interval)
		default:
			b.metrics.discoveryRun("ok")
			refused = false
		}
		t.Reset(b.cfg.Discovery.Interval)
	}
}

// discoverOnce reads the extension list and applies it: on a lone bridge
// at once, in a fleet (where only the OpenAPI leader reads it) by keeping
// it in the lease bucket, which every replica follows. A list the PBX could
// not give whole (ErrExtensionListIncomplete) only adds: an extension
// missing from it may still exist.
func (b *Bridge) discoverOnce(ctx context.Context) error {
	var list []openapi.Extension
	var err error
	if werr := b.withOpenAPI(ctx, func(ctx context.Context, api *openapi.Client) error {
		list, err = api.Extensions(ctx)
		return nil
	}); werr != nil {
		return werr
	}
	complete := err == nil
	if err != nil && !errors.Is(err, openapi.ErrExtensionListIncomplete) {
		return err
	}
	if !complete {
		b.cfg.Logger.Warn("discovery: the extension list is incomplete; adding what it holds, removing nothing", "err", err, "listed", len(list))
	}
	numbers := make([]string, 0, len(list))
	for _, e := range list {
		numbers = append(numbers, e.Number)
	}
	if f := b.fleet.Load(); f != nil {
		return f.PublishList(ctx, numbers, complete)
	}
	return b.applyDiscovered(numbers, complete)
}

// applyDiscovered serves the listed numbers that match the discovery
// patterns, and, when the list is complete, stops the discovered
// extensions it no longer holds.
func (b *Bridge) applyDiscovered(list []string, complete bool) error {
	found := make(map[string]bool, len(list))
	for _, number := range list {
		ok, rule := MatchExtension(number, b.cfg.Discovery)
		if !ok {
			continue
		}
		if ValidToken(number) != nil {
			b.cfg.Logger.Warn("discovery: an extension number that is not a safe subject token is not served", "number", number)
			continue
		}
		found[number] = true
		if b.set.sources(number)&byDiscovery != 0 {
			continue
		}
		if err := b.add(Credential{Username: number}, byDiscovery); err != nil {
			return err
		}
		b.metrics.discoveryChange("added")
		b.cfg.Logger.Info("discovery: serving a new extension", "ext", number, "rule", rule)
	}
	if !complete {
		return nil
	}
	for _, n := range b.set.candidates() {
		if b.set.sources(n)&byDiscovery == 0 || found[n] {
			continue
		}
		if err := b.remove(n, byDiscovery); err != nil && !errors.Is(err, ErrNotServed) {
			return err
		}
		b.metrics.discoveryChange("removed")
		b.cfg.Logger.Info("discovery: the extension is gone from the PBX's list; stopped serving it", "ext", n)
	}
	return nil
}
