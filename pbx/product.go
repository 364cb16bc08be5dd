package pbx

import (
	"context"
	"sync"
	"time"
)

// productRetry is how long a failed getproduct is remembered: the sessions
// of a PBX that is down ask it at most this often between them, not once
// per reconnect attempt each.
const productRetry = time.Second

// ProductCache holds one PBX's getproduct answer for the sessions of a
// process, so that a login after the first costs no getproduct (see the
// package doc, "Requests per login"). Give every session of one PBX the same
// cache (Config.ProductCache) and no other PBX's sessions.
//
// The answer is read again, by the first session that needs it, after the
// cache was told the PBX was unreachable (an API call failed in transport,
// a socket dial failed or a socket was lost) or switched over (20104): a
// firmware upgrade restarts the PBX, and a standby may run another
// firmware, so the topic list follows. The zero value is ready to use; its
// methods are safe for concurrent use.
type ProductCache struct {
	fetching chan struct{} // one getproduct at a time; lazily made

	mu       sync.Mutex
	product  Product
	valid    bool
	failed   error // the last getproduct's error, until productRetry has passed
	failedAt time.Time
	fetches  int
}

// NewProductCache returns an empty cache.
func NewProductCache() *ProductCache { return &ProductCache{} }

// Invalidate makes the next session that needs the product ask the PBX
// again.
func (p *ProductCache) Invalidate() {
	p.mu.Lock()
	p.valid = false
	p.mu.Unlock()
}

// Fetches returns how many getproduct requests went through the cache.
func (p *ProductCache) Fetches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fetches
}

// cached returns the product if it is valid.
func (p *ProductCache) cached() (Product, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.product, p.valid
}

// get returns the cached product or, when there is none, the one fetch
// gets: sessions that need it at the same moment wait for one request
// rather than each sending their own, and a failure is shared with those
// who ask within productRetry.
func (p *ProductCache) get(ctx context.Context, fetch func(context.Context) (Product, error)) (Product, error) {
	p.mu.Lock()
	if p.fetching == nil {
		p.fetching = make(chan struct{}, 1)
	}
	sem := p.fetching
	p.mu.Unlock()
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return Product{}, &TransportError{Endpoint: apiPrefix + "pbx/getproduct", SDK: ErrGetProductFailed, Err: ctx.Err()}
	}
	defer func() { <-sem }()

	p.mu.Lock()
	switch {
	case p.valid:
		defer p.mu.Unlock()
		return p.product, nil
	case p.failed != nil && time.Since(p.failedAt) < productRetry:
		defer p.mu.Unlock()
		return Product{}, p.failed
	}
	p.fetches++
	p.mu.Unlock()

	product, err := fetch(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			p.failed, p.failedAt = err, time.Now()
		}
		return Product{}, err
	}
	p.product, p.valid, p.failed = product, true, nil
	return product, nil
}
