package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// queries is figure 4: cdr.query through the bridge at concurrency 1 and
// 16, next to the same HTTPS query made straight to the simulator.
func (r *benchRun) queries(ctx context.Context, _ *bridgeChild, _ []string) error {
	secrets, err := r.sim.secrets(ctx)
	if err != nil {
		return err
	}
	cfg := pbx.Config{URL: r.sim.url, CAFile: r.sim.caFile, Username: directExt, Secret: secrets[directExt]}
	hc, err := pbx.NewHTTPClient(cfg, 16)
	if err != nil {
		return err
	}
	cfg.HTTPClient = hc
	direct, err := pbx.NewClient(cfg)
	if err != nil {
		return err
	}
	if _, err := direct.Login(ctx); err != nil {
		return err
	}
	defer func() { _ = direct.Logout(context.WithoutCancel(ctx)) }()
	viaBridge := func(ctx context.Context) error {
		m, err := r.nc.RequestWithContext(ctx, "pbx."+queryExt+".cdr.query", []byte(`{"size":20}`))
		if err == nil && m.Header.Get("Nats-Service-Error-Code") != "" {
			err = fmt.Errorf("cdr.query: %s %s", m.Header.Get("Nats-Service-Error-Code"), m.Header.Get("Nats-Service-Error"))
		}
		return err
	}
	straight := func(ctx context.Context) error {
		_, err := direct.SearchPersonal(ctx, pbx.CDRQuery{Size: 20})
		return err
	}
	for _, conc := range []int{1, 16} {
		b, err := load(ctx, conc, r.opts.queryFor, viaBridge)
		if err != nil {
			return err
		}
		d, err := load(ctx, conc, r.opts.queryFor, straight)
		if err != nil {
			return err
		}
		label := fmt.Sprintf("concurrency %d", conc)
		r.add(benchFigure{Figure: "4", Name: "cdr.query p50, " + label, Value: ms(b.p(50)), Unit: "ms", Limit: ms(d.p(50)), LimitName: "ms direct HTTPS query",
			Note: fmt.Sprintf("the bridge's own share: %.2f ms at p50, %.2f ms at p99", ms(b.p(50)-d.p(50)), ms(b.p(99)-d.p(99)))})
		r.add(benchFigure{Figure: "4", Name: "cdr.query p99, " + label, Value: ms(b.p(99)), Unit: "ms", Limit: ms(d.p(99)), LimitName: "ms direct HTTPS query"})
		r.add(benchFigure{Figure: "4", Name: "cdr.query throughput, " + label, Value: b.rate, Unit: "req/s", Limit: d.rate, LimitName: "req/s direct HTTPS query"})
	}
	return nil
}

// loadResult is what a closed-loop load measured.
type loadResult struct {
	lat  []time.Duration // sorted
	rate float64
}

func (l loadResult) p(q float64) time.Duration { return percentile(l.lat, q) }

// load runs call from conc goroutines in a closed loop for d.
func load(ctx context.Context, conc int, d time.Duration, call func(context.Context) error) (loadResult, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(end) && ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				t0 := time.Now()
				err := call(cctx)
				cancel()
				if err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	slices.Sort(lat)
	return loadResult{lat: lat, rate: float64(len(lat)) / time.Since(start).Seconds()}, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
