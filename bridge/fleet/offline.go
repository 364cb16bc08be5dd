package fleet

import "time"

// A replica that cannot bring an extension online (the PBX unreachable or
// refusing this replica's address, its OpenAPI client in back-off) hands
// the lease to another live replica after FleetConfig.ReleaseOfflineAfter,
// and leaves the extension to the others for OfflineCooldown. Its
// heartbeat says how many it declines; while it declines any, the other
// replicas share the extensions as if it were not there, so the released
// ones are taken at once rather than left unowned below everyone's fair
// share. When its cool-down ends it counts again, takes its share back by
// the usual hand-offs, and releases them again if it still cannot log in:
// at worst one failed login round per extension per cool-down.

// releaseOffline hands over every held extension that has not been online
// for ReleaseOfflineAfter, unless no other replica could take it.
func (f *Fleet) releaseOffline() {
	if f.draining.Load() {
		return
	}
	after, cooldown := f.cfg.ReleaseOfflineAfter, f.cfg.OfflineCooldown
	f.mu.Lock()
	var exts []string
	for ext, l := range f.held {
		if !l.releasing {
			exts = append(exts, ext)
		}
	}
	others := f.healthyOthersLocked()
	f.mu.Unlock()
	type down struct {
		ext string
		d   time.Duration
	}
	var stale []down
	for _, ext := range exts {
		if d := f.host.DownFor(ext); d > after {
			stale = append(stale, down{ext, d})
		}
	}
	if len(stale) == 0 {
		return
	}
	if others == 0 {
		f.log.Debug("fleet: extensions offline here, but no other live replica could take them",
			"extensions", len(stale))
		return
	}
	until := time.Now().Add(cooldown)
	f.mu.Lock()
	for _, s := range stale {
		f.cooling[s.ext] = until
	}
	f.mu.Unlock()
	for _, s := range stale {
		f.log.Warn("fleet: extension not online here for too long; handing it to another replica",
			"ext", s.ext, "offline_for", s.d.Round(time.Second), "cooldown", cooldown)
		f.metrics.HandOff()
		f.handOver(s.ext, "offline")
	}
}

// healthyOthersLocked counts the other live replicas that decline nothing.
// f.mu must be held.
func (f *Fleet) healthyOthersLocked() int {
	n := 0
	for key, r := range f.replicas {
		if key != replicaKey(f.replica) && f.alive(key) && r.Declining == 0 {
			n++
		}
	}
	return n
}

// cool reports whether this replica leaves ext to the others now.
func (f *Fleet) cool(ext string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	until, ok := f.cooling[ext]
	return ok && time.Now().Before(until)
}

// declining counts the extensions this replica leaves to the others now,
// forgetting the cool-downs that ended.
func (f *Fleet) declining() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for ext, until := range f.cooling {
		if !now.Before(until) {
			delete(f.cooling, ext)
		}
	}
	return len(f.cooling)
}

// fairShare is how many extensions this replica should hold: the
// candidates over the live replicas, rounded up. A replica that declines
// none counts only the replicas that decline none either (see above).
func (f *Fleet) fairShare() int {
	n := len(f.host.Candidates())
	declining := f.declining()
	f.mu.Lock()
	live := 1 // this replica
	for key := range f.replicas {
		if key != replicaKey(f.replica) && f.alive(key) {
			live++
		}
	}
	healthy := 1 + f.healthyOthersLocked()
	f.mu.Unlock()
	if declining == 0 {
		live = healthy
	}
	return (n + live - 1) / live
}
