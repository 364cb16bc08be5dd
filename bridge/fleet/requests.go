package fleet

import (
	"errors"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbx-bridge/pbx-bridge/schema"
)

// Requests in a fleet: each replica answers on the wildcard subjects and
// hands a request for an extension it does not own to the owner.

// ownerOf returns the live replica holding ext's lease and its inbox, or
// "" when nobody does (the extension is changing hands).
func (f *Fleet) ownerOf(ext string) (replica, inbox string) {
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

// ErrNoOwner is a request for an extension no other live replica owns at
// the moment: it is changing hands (answered 503, retry).
var ErrNoOwner = errors.New("fleet: no other live replica owns the extension now")

// Forward hands a request to the replica that owns ext, which answers the
// requester directly. It fails with ErrNoOwner when nobody owns it now, or
// this replica does but has not started it.
func (f *Fleet) Forward(subject string, data []byte, h micro.Headers, reply, ext string) error {
	owner, inbox := f.ownerOf(ext)
	if owner == "" || owner == f.replica {
		return ErrNoOwner
	}
	m := nats.NewMsg(inbox)
	m.Data, m.Reply = data, reply
	for k, v := range h {
		m.Header[k] = v
	}
	m.Header.Set(ForwardedHeader, f.replica)
	m.Header.Set(subjectHeader, subject)
	if err := f.nc.PublishMsg(m); err != nil {
		return ErrNoOwner
	}
	f.metrics.Forwarded()
	return nil
}

// subjectHeader carries a forwarded request's original subject.
const subjectHeader = "Pbx-Fleet-Subject"

// serveForwarded answers a request another replica handed over.
func (f *Fleet) serveForwarded(m *nats.Msg) {
	f.host.Forwarded(m.Header.Get(subjectHeader), m)
}

// Status is the fleet as this replica sees it: every live replica and the
// extensions it owns, and the extensions nobody owns at the moment.
func (f *Fleet) Status() schema.FleetStatus {
	st := schema.FleetStatus{Replica: f.replica}
	f.mu.Lock()
	st.Leader = f.leader
	byReplica := map[string][]string{}
	owned := map[string]bool{}
	for _, ext := range f.host.Candidates() {
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
