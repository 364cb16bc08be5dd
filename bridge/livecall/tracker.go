package livecall

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// Defaults of Config's zero fields.
const (
	DefaultMaxCalls = 10000
	// DefaultMaxExtensions is twice the largest P-Series' extensions.
	DefaultMaxExtensions = 20000
	// DefaultCallTTL is how long a call may go without a frame before it
	// is forgotten. The PBX sends 30011 only on a change, so a long call
	// with nobody holding or joining is silent all along: the default
	// outlasts any plausible call.
	DefaultCallTTL = 12 * time.Hour
	// DefaultEndedTTL is how long an ended call's id is remembered, to
	// drop its late or replayed frames.
	DefaultEndedTTL = 10 * time.Minute
)

// Bounds that are not configurable.
const (
	// MaxMembers bounds the channels remembered per call (transfers and
	// ring groups add channels; ended ones are kept to recognise stale
	// frames).
	MaxMembers = 256
	// ChannelsPerCall bounds the channels of all calls together: at most
	// ChannelsPerCall * MaxCalls (MaxMembers lets one conference be large,
	// this keeps a flood of large calls within a few tens of MB).
	ChannelsPerCall = 4
	// MaxKinds bounds the registration kinds remembered per extension
	// (the reference lists five).
	MaxKinds = 8
	// MaxFieldBytes bounds every string the tracker keeps (call_id,
	// channel_id, numbers, trunk, statuses, kinds, addresses); a member or
	// event with a longer one is dropped (ReasonBadMember, ReasonBadEvent).
	// MaxCallPathBytes bounds call_path.
	MaxFieldBytes    = 128
	MaxCallPathBytes = 512
	// sweepEvery is how often Observe looks for silent calls and old
	// tombstones.
	sweepEvery = 10 * time.Second
)

// PBXToken is the extension token of the PBX-wide events' subjects:
// <prefix>.pbx.cdr.ended, <prefix>.pbx.system.<level>.
const PBXToken = "pbx"

// Config configures a Tracker.
type Config struct {
	// PBX names the PBX, as host[:port]: it is in every event's data and
	// id. Required.
	PBX string
	// Served, if set, says which extensions get events; the others' state
	// is still kept (so that ids stay the same when one becomes served).
	// nil serves every extension. It is called with the tracker's lock
	// held: it must not call the tracker.
	Served func(ext string) bool
	// MaxCalls bounds the live calls tracked; a new call beyond it is not
	// tracked (ReasonCallsFull). Default DefaultMaxCalls.
	MaxCalls int
	// MaxExtensions bounds the extensions whose presence, registration and
	// call status are tracked (ReasonExtensionsFull). Default
	// DefaultMaxExtensions.
	MaxExtensions int
	// CallTTL and EndedTTL are as their defaults say.
	CallTTL  time.Duration
	EndedTTL time.Duration
	// Now is the clock of events' times and of the TTLs. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.PBX == "" {
		return c, errors.New("livecall: Config.PBX is empty")
	}
	if c.MaxCalls < 0 || c.MaxExtensions < 0 || c.CallTTL < 0 || c.EndedTTL < 0 {
		return c, errors.New("livecall: a Config bound is negative")
	}
	c.MaxCalls = cmpOr(c.MaxCalls, DefaultMaxCalls)
	c.MaxExtensions = cmpOr(c.MaxExtensions, DefaultMaxExtensions)
	c.CallTTL = cmpOr(c.CallTTL, DefaultCallTTL)
	c.EndedTTL = cmpOr(c.EndedTTL, DefaultEndedTTL)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Reason says why something the PBX sent was dropped, skipped or not
// published; Stats counts each.
type Reason string

// The reasons.
const (
	// ReasonBadMember: a call member without a channel_id, a member_status
	// or (an extension) a number, or whose channel changed hands, was
	// skipped; the rest of the frame counts.
	ReasonBadMember Reason = "bad_member"
	// ReasonBadEvent: an event lacked what its type needs (a call_id, an
	// extension): dropped.
	ReasonBadEvent Reason = "bad_event"
	// ReasonUnknownType: an event of a type the tracker publishes nothing
	// for.
	ReasonUnknownType Reason = "unknown_type"
	// ReasonUnknownStatus: a member_status the reference does not list. It
	// is kept (call.list, the state) but changes no state: no event.
	ReasonUnknownStatus Reason = "unknown_status"
	// ReasonStaleFrame: a call's frame contradicts what is known (a channel
	// that hung up is back, a talking one rings again): it is older than
	// the state, and dropped whole.
	ReasonStaleFrame Reason = "stale_frame"
	// ReasonLateFrame: a frame of a call that ended: dropped.
	ReasonLateFrame Reason = "late_frame"
	// ReasonCallsFull: a new call while MaxCalls were tracked.
	ReasonCallsFull Reason = "calls_full"
	// ReasonMembersFull: a channel beyond MaxMembers of a call: skipped.
	ReasonMembersFull Reason = "members_full"
	// ReasonExtensionsFull: a new extension while MaxExtensions were
	// tracked (or a kind beyond MaxKinds): its change was not tracked.
	ReasonExtensionsFull Reason = "extensions_full"
	// ReasonUnsafeExtension: an extension number that is no safe NATS
	// subject token (or is a reserved one): no event.
	ReasonUnsafeExtension Reason = "unsafe_extension"
	// ReasonNotServed: an event of an extension Served refused: not
	// published (the state still changed).
	ReasonNotServed Reason = "not_served"
	// ReasonExpired: a call silent for CallTTL was forgotten, without
	// events.
	ReasonExpired Reason = "expired"
)

// Stats are a Tracker's counters and sizes.
type Stats struct {
	Observed   uint64 // events given to Observe
	Published  uint64 // events returned to publish
	Calls      int    // calls tracked now
	Channels   int    // their channels
	Ended      int    // ended calls remembered now
	Extensions int    // extensions tracked now
	Counts     map[Reason]uint64
}

// Event is one event to publish: on the subject
// <prefix>.<Ext>.<Suffix>, as a CloudEvent of Type with ID, Time and Data.
type Event struct {
	// Ext is the subject's extension token: an extension number, or
	// PBXToken for the PBX-wide events. It is also the CloudEvent's
	// subject.
	Ext string
	// Suffix follows the extension token: "call.ringing",
	// "presence.changed", "cdr.ended", "system.info", ...
	Suffix string
	Type   string    // a schema type
	ID     string    // deterministic (docs/live-calls.md)
	Time   time.Time // when the tracker saw the frame: the PBX stamps none
	Data   any       // schema.CallEvent, schema.PresenceChanged, ...
}

// Subject returns the event's NATS subject under prefix.
func (e Event) Subject(prefix string) string { return prefix + "." + e.Ext + "." + e.Suffix }

// CloudEvent returns the event's envelope, source naming the PBX as the
// bridge's other events do.
func (e Event) CloudEvent(source string) (schema.Event, error) {
	return schema.New(e.Type, source, e.Ext, e.ID, e.Time, e.Data)
}

// Tracker follows the PBX's live calls and extensions (see the package
// doc). It is safe for concurrent use.
type Tracker struct {
	cfg Config

	mu        sync.Mutex
	calls     map[string]*call
	channels  int // of all calls
	ended     tombstones
	exts      map[string]*extInfo
	lastSweep time.Time
	observed  uint64
	published uint64
	counts    map[Reason]uint64
}

// NewTracker validates cfg and returns an empty tracker.
func NewTracker(cfg Config) (*Tracker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Tracker{cfg: cfg, counts: map[Reason]uint64{}}
	t.reset()
	return t, nil
}

func (t *Tracker) reset() {
	t.calls = map[string]*call{}
	t.channels = 0
	t.ended = newTombstones(t.cfg.MaxCalls)
	t.exts = map[string]*extInfo{}
}

// Observe takes one event of the PBX and returns the events to publish, in
// order; none for most frames (a change of nothing, a type it does not
// publish, a dropped frame). Publish them before saving the state
// (Export): a replica that takes over from a state saved before a publish
// publishes again with the same ids, one saved after a publish that did
// not happen would skip it.
func (t *Tracker) Observe(ev *openapi.Event) []Event {
	if ev == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	t.observed++
	t.maybeSweep(now)
	var out []Event
	switch d := ev.Data.(type) {
	case *openapi.CallState:
		out = t.applyCall(d, now)
	case *openapi.CallFailed:
		out = t.applyCall(&d.CallState, now)
	case *openapi.NewCDR:
		out = t.observeCDR(d, now)
	case *openapi.PresenceChange:
		out = t.observePresence(d, now)
	case *openapi.RegistrationChange:
		out = t.observeRegistration(d, now)
	case *openapi.ExtensionCallStatus:
		out = t.observeCallStatus(d, now)
	case *openapi.SystemEvent:
		out = t.observeSystem(ev.Type, d, now)
	default:
		if ev.Data == nil && handled[ev.Type] {
			t.count(ReasonBadEvent) // built by hand without its data
		} else {
			t.count(ReasonUnknownType)
		}
	}
	t.published += uint64(len(out))
	return out
}

// Reconcile ends, with cause gap, every tracked call that is missing from
// live and saw no frame since asOf, and applies the live calls that saw
// none either, as frames. Call it after a gap in the event stream (a
// socket that dropped and came back) with every live call of the PBX
// (call/query for each of inbound, outbound and internal), asOf being the
// tracker's time just before the first query was sent: a call whose frames
// came after asOf is newer than the answer, and left alone.
func (t *Tracker) Reconcile(live []openapi.CallState, asOf time.Time) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	present := make(map[string]bool, len(live))
	var out []Event
	for i := range live {
		cs := &live[i]
		present[cs.CallID] = true
		if c := t.calls[cs.CallID]; c != nil && !c.seen.Before(asOf) {
			continue
		}
		out = append(out, t.applyCall(cs, now)...)
	}
	for _, id := range sortedKeys(t.calls) {
		if c := t.calls[id]; !present[id] && c.seen.Before(asOf) {
			out = append(out, t.endCall(c, now, schema.CauseGap)...)
		}
	}
	t.published += uint64(len(out))
	return out
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{Observed: t.observed, Published: t.published, Calls: len(t.calls), Channels: t.channels, Ended: len(t.ended.at),
		Extensions: len(t.exts), Counts: maps.Clone(t.counts)}
}

func (t *Tracker) count(r Reason) { t.counts[r]++ }
func (t *Tracker) countN(r Reason, n int) {
	if n > 0 {
		t.counts[r] += uint64(n)
	}
}

// maybeSweep forgets silent calls and old tombstones, at most every
// sweepEvery.
func (t *Tracker) maybeSweep(now time.Time) {
	if now.Sub(t.lastSweep) < sweepEvery && !now.Before(t.lastSweep) {
		return
	}
	t.sweep(now)
}

func (t *Tracker) sweep(now time.Time) {
	t.lastSweep = now
	for _, c := range t.calls {
		if now.Sub(c.seen) >= t.cfg.CallTTL {
			t.forget(c)
			t.count(ReasonExpired)
		}
	}
	t.ended.prune(now.Add(-t.cfg.EndedTTL))
}

// forget drops a call from the live ones.
func (t *Tracker) forget(c *call) {
	delete(t.calls, c.id)
	t.channels -= len(c.members)
}

// fits reports whether every string is within MaxFieldBytes.
func fits(strs ...string) bool {
	for _, s := range strs {
		if len(s) > MaxFieldBytes {
			return false
		}
	}
	return true
}

// served reports whether ext gets events, counting why not.
func (t *Tracker) served(ext string) bool {
	if !safeToken(ext) {
		t.count(ReasonUnsafeExtension)
		return false
	}
	if t.cfg.Served != nil && !t.cfg.Served(ext) {
		t.count(ReasonNotServed)
		return false
	}
	return true
}

// handled are the event types Observe publishes for.
var handled = map[openapi.EventType]bool{
	openapi.EventRegistration: true, openapi.EventExtensionCallStatus: true, openapi.EventPresence: true,
	openapi.EventCallState: true, openapi.EventNewCDR: true, openapi.EventCallFailed: true,
	openapi.EventSystemInfo: true, openapi.EventSystemWarning: true, openapi.EventSystemAlert: true,
}

// reservedTokens are extension tokens the bridge's own subjects use.
var reservedTokens = map[string]bool{PBXToken: true, "fleet": true}

// safeToken reports whether ext can stand as a subject's extension token:
// the rules of bridge.ValidToken (printable ASCII without '.', '*', '>'
// and spaces, 1 to 128 bytes), and not a reserved token.
func safeToken(ext string) bool {
	if ext == "" || len(ext) > 128 || reservedTokens[ext] {
		return false
	}
	for i := 0; i < len(ext); i++ {
		switch b := ext[i]; {
		case b == '.' || b == '*' || b == '>' || b <= ' ' || b >= 0x7f:
			return false
		}
	}
	return true
}

func errorf(format string, a ...any) error { return fmt.Errorf("livecall: "+format, a...) }
