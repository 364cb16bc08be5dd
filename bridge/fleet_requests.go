package bridge

import (
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbx-bridge/pbx-bridge/schema"
)

// Requests in a fleet: each replica answers on the wildcard subjects and
// hands a request for an extension it does not own to the owner.

// ownerOf returns the live replica holding ext's lease and its inbox, or
// "" when nobody does (the extension is changing hands).
func (f *fleet) ownerOf(ext string) (replica, inbox string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	replica = f.owners[f.leaseKey(ext)]
	if replica == "" {
		return "", ""
	}
	hb, ok := f.replicas[replicaKey(replica)]
	if !ok || !f.alive(replicaKey(replica)) {
		return "", ""
	}
	return replica, hb.Inbox
}

// forward hands a request to the replica that owns ext, which answers the
// requester directly. It fails (and the request is answered 503, retry)
// when nobody owns it now, or this replica does but has not started it.
func (f *fleet) forward(subject string, data []byte, h micro.Headers, reply, ext string) error {
	owner, inbox := f.ownerOf(ext)
	if owner == "" || owner == f.replica {
		return &elsewhere{ext: ext}
	}
	m := nats.NewMsg(inbox)
	m.Data, m.Reply = data, reply
	for k, v := range h {
		m.Header[k] = v
	}
	m.Header.Set(forwardedHeader, f.replica)
	m.Header.Set(subjectHeader, subject)
	if err := f.b.nc.PublishMsg(m); err != nil {
		return &elsewhere{ext: ext}
	}
	f.b.metrics.forwarded()
	return nil
}

// subjectHeader carries a forwarded request's original subject.
const subjectHeader = "Pbx-Fleet-Subject"

// serveForwarded answers a request another replica handed over.
func (f *fleet) serveForwarded(m *nats.Msg) {
	subject := m.Header.Get(subjectHeader)
	ep, ok := f.b.endpointOf(subject)
	if !ok {
		return
	}
	to := directReplier{nc: f.b.nc, subject: m.Reply}
	f.b.serveRequest(ep.name, ep.schema, ep.handle, subject, m.Data, micro.Headers(m.Header), to, m.Reply)
}

// changingHands is the answer for an extension of the fleet that no live
// replica serves at the moment.
func changingHands(ext string) *apiError {
	return &apiError{code: codeUnavailable, retryAfter: time.Second,
		msg: "extension " + ext + " is changing hands between replicas; retry in a second"}
}

// status is the fleet as this replica sees it: every live replica and the
// extensions it owns, and the extensions nobody owns at the moment.
func (f *fleet) status() schema.FleetStatus {
	st := schema.FleetStatus{Replica: f.replica}
	f.mu.Lock()
	byReplica := map[string][]string{}
	owned := map[string]bool{}
	for _, ext := range f.b.set.candidates() {
		if r := f.owners[f.leaseKey(ext)]; r != "" {
			byReplica[r] = append(byReplica[r], ext)
			owned[ext] = true
		} else {
			st.Unowned = append(st.Unowned, ext)
		}
	}
	for key, hb := range f.replicas {
		if !f.alive(key) && hb.Replica != f.replica {
			continue
		}
		st.Replicas = append(st.Replicas, schema.FleetReplica{Replica: hb.Replica, Heartbeat: hb.At, Extensions: sortedStrings(byReplica[hb.Replica])})
	}
	f.mu.Unlock()
	slices.SortFunc(st.Replicas, func(a, b schema.FleetReplica) int { return strings.Compare(a.Replica, b.Replica) })
	return st
}

// sortedStrings returns a sorted copy of s, never nil.
func sortedStrings(s []string) []string {
	out := append([]string{}, s...)
	slices.Sort(out)
	return out
}
