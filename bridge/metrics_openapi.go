package bridge

import "time"

// The recorders of the OpenAPI's metrics: signatures, tokens, discovery,
// the fleet's leases and the live calls.

func (m *metrics) signatureMinted() {
	if m != nil {
		m.signsMinted.Inc()
	}
}

func (m *metrics) openAPIRequest(endpoint string, _ time.Duration, err error) {
	if m == nil {
		return
	}
	m.openAPIRequests.WithLabelValues(endpoint).Inc()
	if err != nil {
		m.openAPIFailures.WithLabelValues(endpoint).Inc()
	}
}

func (m *metrics) tokenRefreshed(how string) {
	if m != nil {
		m.tokenRefreshes.WithLabelValues(how).Inc()
	}
}

func (m *metrics) discoveryRun(result string) {
	if m != nil {
		m.discoveryRuns.WithLabelValues(result).Inc()
	}
}

func (m *metrics) discoveryChange(change string) {
	if m != nil {
		m.discoveryDiffs.WithLabelValues(change).Inc()
	}
}

func (m *metrics) setLeases(n int) {
	if m != nil {
		m.leasesHeld.Set(float64(n))
	}
}

func (m *metrics) leaseRenewed(d time.Duration) {
	if m != nil {
		m.leaseRenewal.Observe(d.Seconds())
	}
}

func (m *metrics) leaseEvent(event string) {
	if m != nil {
		m.leaseEvents.WithLabelValues(event).Inc()
	}
}

func (m *metrics) leaseAcquired() { m.leaseEvent("acquired") }
func (m *metrics) leaseLost()     { m.leaseEvent("lost") }
func (m *metrics) handOff()       { m.leaseEvent("handed_off") }
func (m *metrics) forwarded()     { m.leaseEvent("forwarded") }

func (m *metrics) liveHeld(held bool) {
	if m != nil {
		v := 0.0
		if held {
			v = 1
		}
		m.liveSocket.Set(v)
	}
}

func (m *metrics) liveDropped(reason string, n int) {
	if m != nil {
		m.liveDrops.WithLabelValues(reason).Add(float64(n))
	}
}
