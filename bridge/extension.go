package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/pbx-bridge/pbx-bridge/bridge/catchup"
	"github.com/pbx-bridge/pbx-bridge/bridge/kvkey"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// Session states of an extension, the last token of
// <prefix>.<ext>.session.<state>.
const (
	stateConnecting   = schema.StateConnecting   // first login under way
	stateOnline       = schema.StateOnline       // logged in, socket up, caught up
	stateReconnecting = schema.StateReconnecting // socket or login lost; recovering
	stateOffline      = schema.StateOffline      // the PBX cannot be logged in to; retrying
	stateStopped      = schema.StateStopped      // given up (runtime error) or shut down
)

// extension supervises one extension: it logs in, maps the session's events
// to NATS, and recovers from whatever ends a session, until a runtime error
// that must not be retried or the bridge's shutdown.
type extension struct {
	b      *Bridge
	number string // the extension number, cred.Username
	log    *slog.Logger
	f      eventFactory
	// cu catches the extension up and keeps its cursor; used by the
	// supervisor only (one goroutine at a time, supervisor.go).
	cu *catchup.Catcher

	// minted is the signature minted for it through the OpenAPI, when no
	// secret is configured; used by the supervisor only.
	minted string

	// Set by the extension set: cancel ends the supervisor, done is closed
	// when it has, stopReasonText (a string) says why it ends when it is not
	// the bridge's shutdown.
	cancel         context.CancelFunc
	done           chan struct{}
	stopReasonText atomic.Value
	// running is the set's count of supervisors, told when this one ends.
	running *sync.WaitGroup
	// serving is the session being served, for the session's EventsReady
	// hook; nil between sessions.
	serving atomic.Pointer[serving]

	mu       sync.Mutex
	cred     Credential
	state    string
	since    time.Time
	down     time.Time // when it was last online (or started), unless online now
	reason   string
	sess     *pbx.Session
	info     pbx.Extension
	terminal *pbx.Error // the runtime error that stopped it, if any
}

// newExtension makes the supervisor of c; the bridge's cursor store is set
// by then (Run starts the supervisors after it).
func newExtension(b *Bridge, c Credential) *extension {
	x := &extension{
		b:      b,
		number: c.Username,
		cred:   c,
		done:   make(chan struct{}),
		log:    b.cfg.Logger.With("ext", c.Username),
		f:      newEventFactory(b.subjects, b.host, c.Username),
		state:  stateConnecting,
		since:  b.cfg.now(),
		down:   b.cfg.now(),
	}
	x.cu = &catchup.Catcher{
		Ext: c.Username, Key: kvkey.Ext(b.host, c.Username), Store: b.cursors, Publish: x.publishRecords,
		PageSize: &b.pageSize, MaxPages: b.cfg.CatchupMaxPages, FirstStart: b.cfg.FirstStart,
		Now: b.cfg.now, Log: x.log, Metrics: catchupMetrics{b.metrics, c.Username},
	}
	return x
}

// catchupMetrics tells the bridge's metrics what one extension's catch-up
// did.
type catchupMetrics struct {
	m   *metrics
	ext string
}

func (c catchupMetrics) CaughtUp(records int, lag time.Duration) { c.m.catchup(c.ext, records, lag) }
func (c catchupMetrics) CursorReset()                            { c.m.cursorReset(c.ext) }
func (c catchupMetrics) Anomaly(reason string)                   { c.m.catchupAnomaly(reason) }

// downFor is how long the extension has not been online while trying to
// be (connecting, reconnecting, offline); 0 when online or stopped.
func (x *extension) downFor() time.Duration {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.state == stateOnline || x.state == stateStopped {
		return 0
	}
	return x.b.cfg.now().Sub(x.down)
}

// pbxConfig is the session configuration of a login with secret.
func (x *extension) pbxConfig(secret string) pbx.Config {
	c := x.b.cfg.PBX
	c.Username, c.Secret = x.number, secret
	c.Logger = x.b.cfg.Logger // package pbx adds the "ext" attribute itself
	c.Limiter = x.b.limiter
	m, ext := x.b.metrics, x.number
	c.Hooks = pbx.Hooks{
		Request:       m.request,
		FrameDropped:  m.frameDropped,
		Reconnect:     func() { m.reconnect(ext) },
		DecodeProblem: m.decodeProblem,
		EventsReady: func() {
			if sv := x.serving.Load(); sv != nil {
				sv.kick()
			}
		},
	}
	return c
}

// secret returns the configured secret ("" when the bridge mints one).
func (x *extension) secret() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.cred.Secret
}

// open logs in: with the configured secret, which wins, or else with the
// signature minted through the OpenAPI, minted once and kept in memory. A
// minted signature the PBX refuses is forgotten, so that the next attempt
// (one login backoff step later) mints a new one: whether minting
// invalidates the older signatures is not known, and either way works.
func (x *extension) open(ctx context.Context) (*pbx.Session, error) {
	secret, minted := x.secret(), false
	if secret == "" {
		if x.minted == "" {
			sign, err := x.b.sign(ctx, x.number)
			if err != nil {
				return nil, fmt.Errorf("minting the login signature: %w", err)
			}
			x.b.metrics.signatureMinted()
			x.minted = sign
		}
		secret, minted = x.minted, true
	}
	sess, err := pbx.Open(ctx, x.pbxConfig(secret))
	if minted && loginRefused(err) {
		x.log.Warn("the PBX refused the minted signature; minting a new one for the next login")
		x.minted = ""
	}
	return sess, err
}

// loginRefused reports whether err is the PBX refusing a login's
// signature (not the SDK plan, not the network).
func loginRefused(err error) bool {
	var ae *pbx.APIError
	return errors.As(err, &ae) && strings.HasSuffix(ae.Endpoint, "/login") && !errors.Is(err, pbx.ErrSDKPlanDisabled)
}

// stopReason is the reason of the session.stopped of an extension whose
// context ended: "removed" from the served set, "released" to another
// replica of the fleet, or the bridge's "shutdown".
func (x *extension) stopReason() string {
	if r, ok := x.stopReasonText.Load().(string); ok {
		return r
	}
	return "shutdown"
}

// retryBackoff is the backoff between failed attempts of the supervisor.
func (x *extension) retryBackoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = x.b.cfg.RetryMin
	bo.MaxInterval = x.b.cfg.RetryMax
	bo.MaxElapsedTime = 0
	return bo
}

// handle maps one session event. It reports whether the event calls for a
// catch-up, and whether the socket came up.
func (x *extension) handle(ctx context.Context, ev pbx.Event) (catchup, up bool) {
	info := x.extInfo()
	switch ev := ev.(type) {
	case *pbx.SocketState:
		if ev.Up {
			// Every (re)open is a gap: the first follows a login (or a
			// restart), the others a lost socket.
			x.cu.Gapped()
			return true, true
		}
		reason := ""
		if ev.Err != nil {
			reason = ev.Err.Error()
		}
		x.setState(ctx, stateReconnecting, reason, 0)
	case *pbx.CDRChanged:
		x.publish(ctx, func(now time.Time) (outEvent, error) { return x.f.cdrChanged(info, ev, now) })
		if x.cu.Notified(ev.PersonalCDR.Timestamp) {
			x.log.Debug("notification for a record the last catch-up published: no query", "timestamp", ev.PersonalCDR.Timestamp)
			return false, false
		}
		return true, false
	case *pbx.Notice:
		x.publish(ctx, func(now time.Time) (outEvent, error) { return x.f.notify(info, ev, now) })
	case *pbx.Overflow:
		x.log.Warn("consumer too slow: notifications dropped; catching up", "dropped", ev.Dropped)
		x.cu.Gapped()
		return true, false
	}
	return false, false
}

// publish builds and publishes one event, and reports whether it is dealt
// with: published, or dropped for good because it can never be. A failure
// is logged, never fatal: JetStream mode retries inside the publisher until
// ctx ends.
//
// An event larger than the NATS server's max_payload is never retried (it
// would wedge the extension: every later event waits behind it). What can
// be shrunk is (a notification's msg becomes a marker with its size); what
// cannot is dropped with an error and pbx_bridge_events_dropped_total, and
// counts as dealt with, so that the records after it still go out.
func (x *extension) publish(ctx context.Context, build func(time.Time) (outEvent, error)) bool {
	ev, err := build(x.b.cfg.now())
	if err != nil {
		x.log.Error("event not built", "err", err)
		return false
	}
	ev, ok := x.fits(ev)
	if !ok {
		return true // dropped for good, with an error and the metric
	}
	switch err := x.b.pub.publish(ctx, ev); {
	case err == nil:
		return true
	case tooLarge(err):
		x.dropTooLarge(ev, err)
		return true
	default:
		x.log.Warn("event not published", "subject", ev.subject, "err", err)
		return false
	}
}

// setState records and announces a state change; repeating the current
// state (with the same reason) announces nothing.
func (x *extension) setState(ctx context.Context, st, reason string, code int) {
	x.mu.Lock()
	prev := x.state
	if prev == st && x.reason == reason {
		x.mu.Unlock()
		return
	}
	now := x.b.cfg.now()
	x.state, x.reason = st, reason
	if prev != st {
		x.since = now
	}
	if prev == stateOnline && st != stateOnline {
		x.down = now
	}
	info := x.info
	x.mu.Unlock()
	x.b.metrics.setState(x.number, prev, st)
	x.log.Info("session state", "state", st, "previous", prev, "reason", reason)
	if ctx.Err() != nil {
		// Stopping: the last word still goes out, within the stop's
		// deadline.
		fctx, cancel := x.finalCtx()
		defer cancel()
		ctx = fctx
	}
	x.publish(ctx, func(now time.Time) (outEvent, error) {
		return x.f.sessionState(info, st, prev, reason, code, now)
	})
}
