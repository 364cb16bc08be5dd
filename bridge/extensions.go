package bridge

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// The set of extensions is not fixed at start: discovery, a reload of the
// configuration (SIGHUP) and, later, fleet ownership add and remove
// extensions while the bridge runs, and all of them go through AddExtension
// and RemoveExtension.

// ErrNotServed is returned for an extension the bridge does not serve.
var ErrNotServed = errors.New("bridge: extension not served")

// ErrStopped is returned when extensions are added to a bridge that is
// shutting down or has stopped.
var ErrStopped = errors.New("bridge: shutting down")

// Reasons an extension serves: it is listed in the configuration, or
// discovery found it on the PBX. It is stopped when it has neither.
const (
	byConfig    = 1 << iota // listed under extensions
	byDiscovery             // found by discovery
)

// candidate is an extension the configuration or discovery wants served.
type candidate struct {
	cred Credential
	why  int // byConfig | byDiscovery
}

// extensionSet is the bridge's extensions: the candidates (what the
// configuration and discovery want served) and the supervisors serving
// them. Every candidate runs, except in a fleet (gated), where a candidate
// runs only while this replica holds its lease.
type extensionSet struct {
	mu    sync.Mutex
	cands map[string]*candidate
	byNum map[string]*extension // running supervisors
	// stopping are the supervisors of stopped extensions that have not
	// ended yet: one started again waits for its old supervisor, so that
	// the two never hold a login at once.
	stopping map[string]chan struct{}
	gated    bool
	stop     *pbx.Closer    // ends the supervisors; nil until Run starts them
	closed   bool           // shutting down: nothing is added any more
	running  sync.WaitGroup // supervisors
	owner    *Bridge
}

func newExtensionSet(b *Bridge, gated bool) extensionSet {
	return extensionSet{cands: map[string]*candidate{}, byNum: map[string]*extension{},
		stopping: map[string]chan struct{}{}, gated: gated, owner: b}
}

func (s *extensionSet) served(n int) { s.owner.metrics.setServed(n) }

// get returns the extension running under number, or nil.
func (s *extensionSet) get(number string) *extension {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byNum[number]
}

// wanted reports whether number is a candidate.
func (s *extensionSet) wanted(number string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cands[number] != nil
}

// sources returns why number is a candidate (0: it is none).
func (s *extensionSet) sources(number string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cands[number]; c != nil {
		return c.why
	}
	return 0
}

// candidates returns the candidates' numbers, sorted.
func (s *extensionSet) candidates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.cands))
	for n := range s.cands {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// list returns the extensions running now, by number.
func (s *extensionSet) list() []*extension {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*extension, 0, len(s.byNum))
	for _, x := range s.byNum {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b *extension) int { return strings.Compare(a.number, b.number) })
	return out
}

// Served returns the numbers of the extensions this bridge serves now
// (in a fleet: those whose lease it holds), sorted.
func (b *Bridge) Served() []string {
	xs := b.set.list()
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.number
	}
	return out
}

// AddExtension serves c (as if listed in the configuration): before Run it
// is started with the others, after it at once (in a fleet: by the replica
// that takes its lease). Adding one already served updates its secret for
// the next login. A bridge that is shutting down refuses with ErrStopped.
func (b *Bridge) AddExtension(c Credential) error {
	if err := b.checkCredential(c); err != nil {
		return err
	}
	return b.add(c, byConfig)
}

// RemoveExtension stops serving username: its session is logged out, it
// publishes session.stopped with reason "removed", and requests for it
// answer 404 from then on. Its cursor stays in the bucket, so that it
// catches up if it comes back. It waits until the supervisor has ended
// (at most about ShutdownTimeout).
func (b *Bridge) RemoveExtension(username string) error {
	return b.remove(username, byConfig)
}

// ExtensionChanges is what ApplyExtensions changed.
type ExtensionChanges struct {
	Added, Removed, SecretChanged []string
}

// ApplyExtensions makes creds the configured set, as a reload of the
// configuration does: it starts the extensions added, stops those removed
// (unless discovery still serves them) and updates the changed secrets for
// their next login (a session that works is left alone). It checks every
// credential before changing anything.
func (b *Bridge) ApplyExtensions(creds []Credential) (ExtensionChanges, error) {
	var ch ExtensionChanges
	want := make(map[string]Credential, len(creds))
	for _, c := range creds {
		if err := b.checkCredential(c); err != nil {
			return ch, err
		}
		if _, dup := want[c.Username]; dup {
			return ch, fmt.Errorf("extension %q is listed twice: one extension must never be logged in twice", c.Username)
		}
		want[c.Username] = c
	}
	b.set.mu.Lock()
	old := make(map[string]candidate, len(b.set.cands))
	for n, c := range b.set.cands {
		old[n] = *c
	}
	b.set.mu.Unlock()
	for n, c := range old {
		nc, keep := want[n]
		switch {
		case !keep && c.why&byConfig != 0:
			if err := b.remove(n, byConfig); err != nil {
				return ch, err
			}
			ch.Removed = append(ch.Removed, n)
		case keep && c.why&byConfig != 0 && c.cred.Secret != nc.Secret:
			ch.SecretChanged = append(ch.SecretChanged, n)
		}
	}
	for _, c := range creds {
		if old[c.Username].why&byConfig == 0 {
			ch.Added = append(ch.Added, c.Username)
		}
		if err := b.add(c, byConfig); err != nil {
			return ch, err
		}
	}
	slices.Sort(ch.Removed)
	slices.Sort(ch.SecretChanged)
	return ch, nil
}

// checkCredential applies the configuration's rules to one credential.
func (b *Bridge) checkCredential(c Credential) error {
	if err := ValidToken(c.Username); err != nil {
		return fmt.Errorf("extension username: %w", err)
	}
	if c.Secret == "" && b.openapi == nil {
		return fmt.Errorf("extension %q: empty secret, and no OpenAPI credentials to mint one", c.Username)
	}
	return nil
}

// add makes c a candidate for the reason why (a configured secret wins for
// the next login) and, unless the set is gated, runs it once Run started.
func (b *Bridge) add(c Credential, why int) error {
	s := &b.set
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStopped
	}
	cand := s.cands[c.Username]
	if cand == nil {
		cand = &candidate{cred: c}
		s.cands[c.Username] = cand
	}
	cand.why |= why
	if why == byConfig {
		cand.cred.Secret = c.Secret
		if x := s.byNum[c.Username]; x != nil {
			x.mu.Lock()
			x.cred.Secret = c.Secret
			x.mu.Unlock()
		}
	}
	if !s.gated && s.stop != nil {
		s.startLocked(c.Username)
	}
	return nil
}

// remove takes the reason why away from username and, when no reason is
// left, stops it and forgets the candidate.
func (b *Bridge) remove(username string, why int) error {
	s := &b.set
	s.mu.Lock()
	cand := s.cands[username]
	if cand == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotServed, username)
	}
	cand.why &^= why
	if cand.why != 0 {
		s.mu.Unlock()
		return nil
	}
	delete(s.cands, username)
	s.mu.Unlock()
	s.halt(username, "removed")
	if b.fleet.Load() != nil {
		b.fleet.Load().Release(username, "removed")
	}
	return nil
}

// run starts number's supervisor if it is a candidate, not running, and
// the set runs; it reports whether the extension runs now.
func (s *extensionSet) run(number string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked(number)
}

// startLocked starts the supervisor of the candidate number, after the
// previous one (if any is still stopping) has ended. s.mu must be held; it
// may be released while waiting.
func (s *extensionSet) startLocked(number string) bool {
	for s.stopping[number] != nil {
		done := s.stopping[number]
		s.mu.Unlock()
		<-done
		s.mu.Lock()
	}
	cand := s.cands[number]
	switch {
	case s.byNum[number] != nil:
		return true
	case cand == nil || s.stop == nil || s.closed:
		return false
	}
	x := newExtension(s.owner, cand.cred)
	ctx, cancel := s.stop.Bind(context.Background())
	x.cancel = cancel
	s.byNum[number] = x
	s.served(len(s.byNum))
	s.running.Add(1)
	x.running = &s.running
	go x.run(ctx) // x.finish tells s.running and closes x.done
	return true
}

// halt stops number's supervisor, if it runs, and waits for it to end:
// logout, then session.stopped with the reason ("removed", "released" to
// another replica, "lease_lost"). It reports whether it ran.
func (s *extensionSet) halt(number, reason string) bool {
	s.mu.Lock()
	x := s.byNum[number]
	if x == nil {
		s.mu.Unlock()
		return false
	}
	delete(s.byNum, number)
	s.served(len(s.byNum))
	s.stopping[number] = x.done
	s.mu.Unlock()
	x.log.Info("extension stopping", "reason", reason)
	x.stopReasonText.Store(reason)
	x.cancel()
	<-x.done
	x.mu.Lock()
	last := x.state
	x.mu.Unlock()
	s.owner.metrics.forget(number, last)
	s.mu.Lock()
	delete(s.stopping, number)
	s.mu.Unlock()
	return true
}

// startAll starts every candidate (unless gated) and, from then on, each
// one added.
func (s *extensionSet) startAll(stop *pbx.Closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop = stop
	if s.gated {
		return
	}
	for n := range s.cands {
		s.startLocked(n)
	}
}

// close refuses further additions; the supervisors end with their context.
func (s *extensionSet) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// MatchExtension reports whether discovery serves the extension number by
// d's patterns, and the rule that decided: an Exclude pattern wins over
// the Include ones, and an empty Include includes every number.
func MatchExtension(number string, d DiscoveryConfig) (served bool, rule string) {
	for _, p := range d.Exclude {
		if ok, _ := path.Match(p, number); ok {
			return false, "exclude: " + p
		}
	}
	if len(d.Include) == 0 {
		return true, "include: (all)"
	}
	for _, p := range d.Include {
		if ok, _ := path.Match(p, number); ok {
			return true, "include: " + p
		}
	}
	return false, "include: (no pattern matches)"
}
