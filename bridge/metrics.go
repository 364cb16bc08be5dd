package bridge

import (
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// sessionStates are the values of the session state gauge; exactly one is 1
// per extension.
var sessionStates = []string{stateConnecting, stateOnline, stateReconnecting, stateOffline, stateStopped}

// metrics is the bridge's Prometheus instrumentation, on a registry of its
// own so that several bridges can live in one process (tests). A nil
// *metrics records nothing.
//
// The series about one extension (session state, catch-up, reconnects,
// cursor resets) carry an "ext" label only with perExt
// (metrics.per_extension): at 10,000 extensions they are 70,000 series or
// more, and about 2.5 KiB of heap per extension. Without it the same names carry the
// bridge's totals, so that sum() over them reads the same either way.
type metrics struct {
	perExt bool
	// lags is each served extension's lag at its last catch-up, for the
	// bridge-wide pbx_bridge_catchup_lag_seconds (the largest) without
	// perExt.
	lagMu sync.Mutex
	lags  map[string]float64

	reg             *prometheus.Registry
	state           *prometheus.GaugeVec
	eventsPublished *prometheus.CounterVec
	publishErrors   *prometheus.CounterVec
	publishRetries  *prometheus.CounterVec
	catchupRecords  *prometheus.CounterVec
	catchupLag      *prometheus.GaugeVec
	requestSeconds  *prometheus.HistogramVec
	requestErrors   *prometheus.CounterVec
	framesDropped   *prometheus.CounterVec
	reconnects      *prometheus.CounterVec
	requests        *prometheus.CounterVec
	cursorResets    *prometheus.CounterVec
	anomalies       *prometheus.CounterVec
	eventsDropped   *prometheus.CounterVec
	decodeProblems  *prometheus.CounterVec
	liveDrops       *prometheus.CounterVec
	liveSocket      prometheus.Gauge
	served          prometheus.Gauge
	signsMinted     prometheus.Counter
	openAPIRequests *prometheus.CounterVec
	openAPIFailures *prometheus.CounterVec
	tokenRefreshes  *prometheus.CounterVec
	discoveryRuns   *prometheus.CounterVec
	discoveryDiffs  *prometheus.CounterVec
	leasesHeld      prometheus.Gauge
	leaseEvents     *prometheus.CounterVec
	leaseRenewal    prometheus.Histogram
}

// newMetrics defines every series; a list, longer than a function should
// be, that reads best in one place.
func newMetrics(perExt bool) *metrics {
	// ext is the label of the per-extension series, none without perExt.
	ext := []string{"ext"}
	stateHelp := "1 for the current session state of each extension, 0 for the others."
	if !perExt {
		ext = nil
		stateHelp = "Extensions served in each session state (metrics.per_extension labels them by extension instead)."
	}
	m := &metrics{
		perExt: perExt,
		lags:   map[string]float64{},
		reg:    prometheus.NewRegistry(),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pbx_bridge_session_state", Help: stateHelp,
		}, append(ext, "state")),
		eventsPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_events_published_total", Help: "Events published (acknowledged by JetStream when it is on), by CloudEvents type.",
		}, []string{"type"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_publish_errors_total", Help: "Failed publish attempts, by CloudEvents type.",
		}, []string{"type"}),
		publishRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_publish_retries_total", Help: "Publish attempts retried after a failure, by CloudEvents type.",
		}, []string{"type"}),
		catchupRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_catchup_records_total", Help: "CDR records published by catch-up (by extension with metrics.per_extension).",
		}, ext),
		catchupLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pbx_bridge_catchup_lag_seconds", Help: "Newest CDR time on the PBX minus newest CDR time published, at the last catch-up, by extension.",
		}, ext),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pbx_bridge_pbx_request_duration_seconds", Help: "PBX HTTP API request latency, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"endpoint"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_pbx_request_errors_total", Help: "PBX HTTP API requests that failed, by endpoint.",
		}, []string{"endpoint"}),
		framesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_frames_dropped_total", Help: "Subscribe socket frames dropped, by reason.",
		}, []string{"reason"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_reconnects_total", Help: "Subscribe socket reconnect attempts and re-logins (by extension with metrics.per_extension).",
		}, ext),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_requests_total", Help: "Request/reply calls answered, by endpoint and result code.",
		}, []string{"endpoint", "code"}),
		cursorResets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_cursor_resets_total", Help: "Cursors started over because the PBX's CDR history was reset (its newest record older than the cursor), by extension with metrics.per_extension.",
		}, ext),
		anomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_catchup_anomalies_total", Help: "Misbehaviours of the PBX met by catch-up scans (a repeated page, a bad total_number, a record without id, ...), by reason.",
		}, []string{"reason"}),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_events_dropped_total", Help: "Events that could never be published and were dropped (larger than the NATS server's max_payload even when shrunk), by CloudEvents type and reason.",
		}, []string{"type", "reason"}),
		liveDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_live_events_dropped_total", Help: "OpenAPI event socket frames (or call members) not turned into events, by reason: the stream's drop reasons (overflow: the bridge fell behind; the others: undecodable), each event counted once.",
		}, []string{"reason"}),
		liveSocket: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbx_bridge_live_socket_held", Help: "1 while this replica runs the PBX's OpenAPI event socket (a lone bridge with events.enabled, or the fleet's OpenAPI leader), else 0.",
		}),
		decodeProblems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_pbx_decode_problems_total", Help: "Fields of PBX answers and notifications that could not be read (left zero), by endpoint and field (array indices folded).",
		}, []string{"endpoint", "field"}),
		served: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pbx_bridge_extensions_served", Help: "Extensions the bridge serves now (configured and discovered).",
		}),
		signsMinted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbx_bridge_signatures_minted_total", Help: "Login signatures minted through the PBX's OpenAPI (sign/create).",
		}),
		openAPIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_openapi_requests_total", Help: "PBX OpenAPI requests, by endpoint.",
		}, []string{"endpoint"}),
		openAPIFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_openapi_request_errors_total", Help: "PBX OpenAPI requests that failed, by endpoint.",
		}, []string{"endpoint"}),
		tokenRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_openapi_token_renewals_total", Help: "OpenAPI access tokens obtained, by how: get_token or refresh_token.",
		}, []string{"how"}),
		discoveryRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_discovery_runs_total", Help: "Readings of the PBX's extension list by discovery, by result: ok, failed, refused.",
		}, []string{"result"}),
		discoveryDiffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pbx_bridge_discovery_changes_total", Help: "Extensions discovery started (added) or stopped (removed).",
		}, []string{"change"}),
	}
	m.leasesHeld = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pbx_bridge_fleet_leases_held", Help: "Extension leases this replica holds.",
	})
	m.leaseEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pbx_bridge_fleet_lease_events_total", Help: "Lease events of this replica: acquired, lost (taken, lapsed or fenced), handed_off (released towards the fair share), forwarded (requests handed to the owner).",
	}, []string{"event"})
	m.leaseRenewal = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pbx_bridge_fleet_lease_renewal_seconds", Help: "Latency of one lease renewal (a revision-checked KV update).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	lag := prometheus.Collector(m.catchupLag)
	if !perExt {
		// The totals exist from the start, at 0, as a counter of one
		// series should.
		for _, s := range sessionStates {
			m.state.WithLabelValues(s).Set(0)
		}
		m.catchupRecords.WithLabelValues()
		m.reconnects.WithLabelValues()
		m.cursorResets.WithLabelValues()
		lag = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pbx_bridge_catchup_lag_seconds", Help: "Newest CDR time on the PBX minus newest CDR time published, at the last catch-up: the largest of the extensions served (by extension with metrics.per_extension).",
		}, m.maxLag)
	}
	m.reg.MustRegister(m.liveDrops, m.liveSocket, m.leasesHeld, m.leaseEvents, m.leaseRenewal, m.served, m.signsMinted, m.openAPIRequests, m.openAPIFailures, m.tokenRefreshes, m.discoveryRuns, m.discoveryDiffs, m.anomalies, m.eventsDropped, m.decodeProblems, m.cursorResets, m.state, m.eventsPublished, m.publishErrors, m.publishRetries, m.catchupRecords,
		lag, m.requestSeconds, m.requestErrors, m.framesDropped, m.reconnects, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// extLabel is the label values of a per-extension series: the extension
// with perExt, none without.
func (m *metrics) extLabel(ext string) []string {
	if m.perExt {
		return []string{ext}
	}
	return nil
}

// setState records that ext went from prev ("" when it starts) to st.
func (m *metrics) setState(ext, prev, st string) {
	if m == nil {
		return
	}
	if !m.perExt {
		if prev != st {
			if prev != "" {
				m.state.WithLabelValues(prev).Dec()
			}
			m.state.WithLabelValues(st).Inc()
		}
		return
	}
	for _, s := range sessionStates {
		v := 0.0
		if s == st {
			v = 1
		}
		m.state.WithLabelValues(ext, s).Set(v)
	}
}

// forget takes ext, whose supervisor ended in state last, out of the
// series once it is no longer served: per extension its series go (under
// discovery's churn they would pile up otherwise), and both modes count
// the same extensions.
func (m *metrics) forget(ext, last string) {
	if m == nil {
		return
	}
	if m.perExt {
		for _, v := range []*prometheus.MetricVec{m.state.MetricVec, m.catchupRecords.MetricVec, m.catchupLag.MetricVec, m.reconnects.MetricVec, m.cursorResets.MetricVec} {
			v.DeletePartialMatch(prometheus.Labels{"ext": ext})
		}
		return
	}
	m.state.WithLabelValues(last).Dec()
	m.lagMu.Lock()
	delete(m.lags, ext)
	m.lagMu.Unlock()
}

// maxLag is the largest catch-up lag of the extensions served.
func (m *metrics) maxLag() float64 {
	m.lagMu.Lock()
	defer m.lagMu.Unlock()
	most := 0.0
	for _, l := range m.lags {
		most = max(most, l)
	}
	return most
}

func (m *metrics) published(typ string) {
	if m != nil {
		m.eventsPublished.WithLabelValues(typ).Inc()
	}
}

func (m *metrics) publishError(typ string) {
	if m != nil {
		m.publishErrors.WithLabelValues(typ).Inc()
	}
}

func (m *metrics) publishRetry(typ string) {
	if m != nil {
		m.publishRetries.WithLabelValues(typ).Inc()
	}
}

func (m *metrics) catchup(ext string, records int, lag time.Duration) {
	if m == nil {
		return
	}
	m.catchupRecords.WithLabelValues(m.extLabel(ext)...).Add(float64(records))
	if m.perExt {
		m.catchupLag.WithLabelValues(ext).Set(lag.Seconds())
		return
	}
	m.lagMu.Lock()
	m.lags[ext] = lag.Seconds()
	m.lagMu.Unlock()
}

func (m *metrics) request(endpoint string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.requestSeconds.WithLabelValues(endpoint).Observe(d.Seconds())
	if err != nil {
		m.requestErrors.WithLabelValues(endpoint).Inc()
	}
}

func (m *metrics) frameDropped(reason string) {
	if m != nil {
		m.framesDropped.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) reconnect(ext string) {
	if m != nil {
		m.reconnects.WithLabelValues(m.extLabel(ext)...).Inc()
	}
}

func (m *metrics) answered(endpoint, code string) {
	if m != nil {
		m.requests.WithLabelValues(endpoint, code).Inc()
	}
}

func (m *metrics) cursorReset(ext string) {
	if m != nil {
		m.cursorResets.WithLabelValues(m.extLabel(ext)...).Inc()
	}
}

func (m *metrics) catchupAnomaly(reason string) {
	if m != nil {
		m.anomalies.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) eventDropped(typ, reason string) {
	if m != nil {
		m.eventsDropped.WithLabelValues(typ, reason).Inc()
	}
}

// arrayIndex matches the indices of a field path, folded so that the
// metric's field label stays a small set.
var arrayIndex = regexp.MustCompile(`\[\d+\]`)

func (m *metrics) decodeProblem(endpoint, field string) {
	if m != nil {
		m.decodeProblems.WithLabelValues(endpoint, arrayIndex.ReplaceAllString(field, "[]")).Inc()
	}
}

func (m *metrics) setServed(n int) {
	if m != nil {
		m.served.Set(float64(n))
	}
}
