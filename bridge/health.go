package bridge

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics (Prometheus), /healthz (the process is alive) and
// /readyz (NATS is connected and every extension is online or stopped by a
// runtime error it must not retry).
func (b *Bridge) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := b.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Ready reports why the bridge is not ready, or nil.
func (b *Bridge) Ready() error {
	var problems []string
	if st := b.nc.Status(); st != nats.CONNECTED {
		problems = append(problems, "nats: "+st.String())
	}
	for _, x := range b.set.list() {
		x.mu.Lock()
		st, terminal := x.state, x.terminal
		x.mu.Unlock()
		if st == stateOnline || st == stateStopped && terminal != nil {
			continue
		}
		problems = append(problems, x.number+": "+st)
	}
	if len(problems) > 0 {
		return fmt.Errorf("not ready: %s", strings.Join(problems, "; "))
	}
	return nil
}
