package bridge

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
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

// extensionSet is the bridge's extensions and the supervisors that serve
// them.
type extensionSet struct {
	mu    sync.Mutex
	byNum map[string]*extension
	// stopping are the supervisors of removed extensions that have not
	// ended yet: one added again waits for its old supervisor, so that
	// the two never hold a login at once.
	stopping map[string]chan struct{}
	ctx      context.Context // the supervisors' context once Run started; nil before
	closed   bool            // shutting down: nothing is added any more
	running  sync.WaitGroup  // supervisors
}

// get returns the extension served under number, or nil.
func (s *extensionSet) get(number string) *extension {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byNum[number]
}

// list returns the extensions served now, by number.
func (s *extensionSet) list() []*extension {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*extension, 0, len(s.byNum))
	for _, x := range s.byNum {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b *extension) int {
		switch {
		case a.number < b.number:
			return -1
		case a.number > b.number:
			return 1
		}
		return 0
	})
	return out
}

// Served returns the numbers of the extensions served now, sorted.
func (b *Bridge) Served() []string {
	xs := b.set.list()
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.number
	}
	return out
}

// AddExtension serves c (as if listed in the configuration): before Run it
// is started with the others, after it at once. Adding one already served
// updates its secret for the next login. A bridge that is shutting down
// refuses with ErrStopped.
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
	for _, x := range b.set.list() {
		c, keep := want[x.number]
		switch {
		case !keep && x.sources()&byConfig != 0:
			if err := b.remove(x.number, byConfig); err != nil {
				return ch, err
			}
			ch.Removed = append(ch.Removed, x.number)
		case keep && x.secret() != c.Secret:
			ch.SecretChanged = append(ch.SecretChanged, x.number)
		}
	}
	for _, c := range creds {
		if x := b.set.get(c.Username); x == nil || x.sources()&byConfig == 0 {
			ch.Added = append(ch.Added, c.Username)
		}
		if err := b.add(c, byConfig); err != nil {
			return ch, err
		}
	}
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

// add serves c for the reason why, starting its supervisor if the bridge
// runs; for an extension already served it adds the reason and takes the
// secret.
func (b *Bridge) add(c Credential, why int) error {
	s := &b.set
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.stopping[c.Username] != nil {
		done := s.stopping[c.Username]
		s.mu.Unlock()
		<-done
		s.mu.Lock()
	}
	if s.closed {
		return ErrStopped
	}
	if x := s.byNum[c.Username]; x != nil {
		x.mu.Lock()
		x.why |= why
		if why == byConfig {
			x.cred.Secret = c.Secret
		}
		x.mu.Unlock()
		return nil
	}
	x := newExtension(b, c)
	x.why = why
	s.byNum[c.Username] = x
	b.metrics.setServed(len(s.byNum))
	if s.ctx != nil {
		s.start(x)
	}
	return nil
}

// start runs x's supervisor. s.mu must be held and s.ctx set.
func (s *extensionSet) start(x *extension) {
	ctx, cancel := context.WithCancel(s.ctx)
	x.cancel = cancel
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		defer close(x.done)
		x.run(ctx)
	}()
}

// remove takes the reason why away from username's extension and stops it
// when no reason is left.
func (b *Bridge) remove(username string, why int) error {
	s := &b.set
	s.mu.Lock()
	x := s.byNum[username]
	if x == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotServed, username)
	}
	x.mu.Lock()
	x.why &^= why
	left := x.why
	x.mu.Unlock()
	if left != 0 {
		s.mu.Unlock()
		return nil
	}
	delete(s.byNum, username)
	b.metrics.setServed(len(s.byNum))
	started := x.cancel != nil
	if started {
		s.stopping[username] = x.done
	}
	s.mu.Unlock()
	x.log.Info("extension removed: stopping it")
	if started {
		x.removed.Store(true)
		x.cancel()
		<-x.done
		s.mu.Lock()
		delete(s.stopping, username)
		s.mu.Unlock()
	}
	return nil
}

// startAll starts every extension added before Run, and any added later.
func (s *extensionSet) startAll(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx = ctx
	for _, x := range s.byNum {
		s.start(x)
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
