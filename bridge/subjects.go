package bridge

import (
	"fmt"
	"strings"

	"github.com/pbx-bridge/pbx-bridge/bridge/livecall"
)

// ValidToken reports whether s can stand as one token of a NATS subject:
// non-empty, printable ASCII, and free of the separator, the wildcards and
// white space, so that a configured value can never widen or split a subject.
func ValidToken(s string) error {
	if s == "" {
		return fmt.Errorf("empty subject token")
	}
	if len(s) > 128 {
		return fmt.Errorf("subject token %q is longer than 128 bytes", s)
	}
	for _, r := range s {
		switch {
		case r == '.' || r == '*' || r == '>':
			return fmt.Errorf("subject token %q contains %q", s, r)
		case r <= ' ' || r >= 0x7f:
			return fmt.Errorf("subject token %q contains a space, control or non-ASCII character", s)
		}
	}
	return nil
}

// ValidPrefix checks a subject prefix: one or more valid tokens joined by dots.
func ValidPrefix(p string) error {
	if p == "" {
		return fmt.Errorf("empty subject prefix")
	}
	for _, tok := range strings.Split(p, ".") {
		if err := ValidToken(tok); err != nil {
			return fmt.Errorf("subject prefix %q: %w", p, err)
		}
	}
	return nil
}

// subjects builds every subject of one prefix.
type subjects struct {
	prefix string
	live   bool // the live call events (Events.Enabled) are published
	calls  bool // the call control endpoints (AllowCallControl) are served
}

func (s subjects) ext(ext string, rest ...string) string {
	return s.prefix + "." + ext + "." + strings.Join(rest, ".")
}

func (s subjects) cdrChanged(ext string) string  { return s.ext(ext, "cdr", "changed") }
func (s subjects) cdrCreated(ext string) string  { return s.ext(ext, "cdr", "created") }
func (s subjects) callMissed(ext string) string  { return s.ext(ext, "call", "missed") }
func (s subjects) runtimeErr(ext string) string  { return s.ext(ext, "runtime", "error") }
func (s subjects) session(ext, st string) string { return s.ext(ext, "session", st) }
func (s subjects) notify(ext, name string) string {
	return s.ext(ext, "notify", name)
}

// recordFilters are the subjects of the records stream: one event per CDR,
// kept by age only, never by size or count (a limit there would drop
// calls).
func (s subjects) recordFilters() []string {
	return []string{s.prefix + ".*.cdr.created", s.prefix + ".*.call.missed"}
}

// signalFilters are the subjects of the signals stream: notifications and
// states, which a flooding PBX can send without end, so that stream is
// bounded by size and per subject too.
func (s subjects) signalFilters() []string {
	f := []string{
		s.prefix + ".*.cdr.changed",
		s.prefix + ".*.session.*",
		s.prefix + ".*.runtime.error",
		s.prefix + ".*.notify.*",
	}
	if s.live {
		// Live state is a signal; the record of a call is still
		// cdr.created. The call events by name: pbx.*.call.* would take
		// the call control requests too.
		for _, ev := range []string{"call.ringing", "call.answered", "call.held", "call.resumed", "call.ended",
			"presence.changed", "registration.changed", "call_status.changed", "cdr.ended", "system.*"} {
			f = append(f, s.prefix+".*."+ev)
		}
	}
	return f
}

// eventFilters are every event subject, and none of the request/reply
// subjects (cdr.query, info), whose requests a stream would otherwise store
// and answer with a PubAck racing the reply.
func (s subjects) eventFilters() []string {
	return append(s.recordFilters(), s.signalFilters()...)
}

// requestFilters are the request/reply subjects of the micro service.
func (s subjects) requestFilters() []string {
	f := []string{s.prefix + ".*.cdr.query", s.prefix + ".*.info"}
	if s.calls {
		for _, op := range livecall.Ops() {
			f = append(f, op.Subject(s.prefix))
		}
	}
	return f
}

// fleetStatus is the subject of the fleet's status request.
func (s subjects) fleetStatus() string { return s.prefix + ".fleet.status" }

// extOf returns the extension token of a subject under the prefix, as in
// "<prefix>.<ext>.cdr.query".
func (s subjects) extOf(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, s.prefix+".")
	if !ok {
		return "", false
	}
	ext, _, ok := strings.Cut(rest, ".")
	return ext, ok && ext != ""
}
