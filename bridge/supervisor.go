package bridge

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// An extension's supervisor logs in, serves the session and recovers from
// whatever ends it. It runs on one goroutine at a time, and on none while
// the extension is idle: a goroutine waiting for an idle extension's next
// event held an 8 KiB stack (a third of what an idle extension cost), so
// the serving loop parks instead, and what it waited for (the session's
// events, its two timers, the context's end) starts a goroutine that takes
// up where it stopped (serving.kick). The socket's reader is then an idle
// extension's only goroutine.

// run is the supervisor, from the extension's start to its end (finish).
func (x *extension) run(ctx context.Context) {
	x.b.metrics.setState(x.number, "", stateConnecting)
	x.publish(ctx, func(now time.Time) (outEvent, error) {
		return x.f.sessionState(pbx.Extension{}, stateConnecting, "", "", 0, now)
	})
	x.loop(ctx, x.retryBackoff(), nil)
}

// loop logs in, serves and recovers, until the extension stops; with sv it
// takes up serving a session where sv parked. It returns when sv parks (a
// kick calls it again) or after finish.
func (x *extension) loop(ctx context.Context, bo *backoff.ExponentialBackOff, sv *serving) {
	for {
		if sv == nil {
			sess := x.login(ctx, bo)
			if sess == nil {
				x.finish()
				return
			}
			sv = x.startServing(ctx, sess, bo)
		}
		switch sv.serve() {
		case parked:
			return
		case stopping:
			x.shutdown(sv.sess)
			x.finish()
			return
		}
		if !x.afterSession(ctx, sv.sess, bo) {
			x.finish()
			return
		}
		sv = nil
	}
}

// login opens a session, retrying with bo's backoff; nil means the
// extension stopped (its context ended, or a runtime error), its state
// said.
func (x *extension) login(ctx context.Context, bo *backoff.ExponentialBackOff) *pbx.Session {
	for {
		sess, err := x.open(ctx)
		if err == nil {
			x.attach(sess)
			x.log.Info("logged in", "ext_id", sess.Extension().ID, "pbx_version", sess.Product().Version)
			return sess
		}
		if ctx.Err() != nil {
			x.setState(ctx, stateStopped, x.stopReason(), 0)
			return nil
		}
		if e, ok := pbx.CodeOf(err); ok && isRuntime(e) && !errors.Is(err, pbx.ErrReLogin) {
			x.stop(ctx, e, err)
			return nil
		}
		x.log.Warn("login failed; retrying", "err", err)
		x.setState(ctx, stateOffline, err.Error(), codeOf(err))
		if !sleep(ctx, bo.NextBackOff()) {
			x.setState(ctx, stateStopped, x.stopReason(), 0)
			return nil
		}
	}
}

// afterSession closes a session that ended and waits before the next
// login; it reports whether there is one (false: the extension stopped).
func (x *extension) afterSession(ctx context.Context, sess *pbx.Session, bo *backoff.ExponentialBackOff) bool {
	err := sess.Err()
	x.detach()
	_ = sess.Close()
	e, _ := pbx.CodeOf(err)
	switch {
	case errors.Is(err, pbx.ErrReLogin):
		x.publish(ctx, func(now time.Time) (outEvent, error) {
			return x.f.runtimeError(x.extInfo(), e, err.Error(), "relogin", now)
		})
		x.logout(sess)
	case errors.Is(err, pbx.ErrTokenRejected):
		// Not a PBX runtime error: the token expired or was revoked (by
		// the socket or the HTTP API). The session is closed above, before
		// the next login: a second login of a live session would knock
		// it out (10000). Log out what can be: a PBX whose API refused the
		// token may still hold the login.
		x.logout(sess)
	case e != nil && isRuntime(e):
		x.logout(sess)
		x.stop(ctx, e, err)
		return false
	default:
		x.log.Warn("session ended unexpectedly; logging in again", "err", err)
		x.logout(sess)
	}
	x.log.Info("logging in again", "reason", err)
	x.b.metrics.reconnect(x.number)
	x.setState(ctx, stateReconnecting, err.Error(), codeOf(err))
	if !sleep(ctx, bo.NextBackOff()) {
		x.setState(ctx, stateStopped, x.stopReason(), 0)
		return false
	}
	return true
}

// finish marks the supervisor ended, once, for good.
func (x *extension) finish() {
	close(x.done)
	if x.running != nil {
		x.running.Done()
	}
}

// What serving.serve returns.
const (
	parked   = iota // nothing to do until a kick
	stopping        // the extension's context ended
	ended           // the session ended
)

// serving is one session being served: its events mapped, its catch-ups
// run. Catch-up runs in the same loop, between events, so that records
// are published in order. A burst of 20049 notifications waiting in the
// session's buffer is mapped first and then answered by one catch-up, not
// one each. After a failed catch-up the next waits for its backoff,
// whatever triggers it meanwhile, so that a PBX that keeps failing (or
// lying) is not scanned once per notification and the PBX-wide limiter
// stays free for the others. The extension goes online once the socket is
// up and the first catch-up has run, whether or not it succeeded: a PBX
// whose CDR list misbehaves must not stop its requests from being
// answered.
type serving struct {
	x    *extension
	ctx  context.Context
	sess *pbx.Session
	bo   *backoff.ExponentialBackOff // the logins', reset once online
	// failures spaces the catch-ups after a failed one; retry (nil until
	// the first failure) ends the wait. poll bounds the wait for a record made without a 20049 (the
	// socket is lossy), jittered so that thousands of extensions do not
	// poll the PBX in step. Both fire into a flag and a kick.
	failures          *backoff.ExponentialBackOff
	retry, poll       *time.Timer
	retryDue, pollDue atomic.Bool
	stopKick          func() bool // the kick on the context's end

	// pending: a gap or a change is known and not yet caught up; waiting:
	// a failed catch-up's backoff runs until retry fires. Used by the
	// goroutine serving it only (the hand-over in kick orders them).
	pending, waiting bool

	mu      sync.Mutex
	running bool // a goroutine serves it, or is about to
	kicked  bool // kicked while running: look again before parking
	over    bool // the session or the extension ended: kicks do nothing
}

// startServing prepares sess to be served by the calling goroutine.
func (x *extension) startServing(ctx context.Context, sess *pbx.Session, bo *backoff.ExponentialBackOff) *serving {
	sv := &serving{x: x, ctx: ctx, sess: sess, bo: bo, failures: x.retryBackoff(), running: true}
	sv.poll = time.AfterFunc(jitter(x.b.cfg.CatchupInterval), func() { sv.pollDue.Store(true); sv.kick() })
	sv.stopKick = context.AfterFunc(ctx, sv.kick)
	x.serving.Store(sv)
	return sv
}

// kick makes sure a goroutine looks at sv: the one serving it looks again
// before it parks, or a new one takes up where sv parked.
func (sv *serving) kick() {
	sv.mu.Lock()
	switch {
	case sv.over:
	case sv.running:
		sv.kicked = true
	default:
		sv.running = true
		sv.mu.Unlock()
		go sv.x.loop(sv.ctx, sv.bo, sv)
		return
	}
	sv.mu.Unlock()
}

// retryIn arms the retry timer, made at the first failure: most sessions
// never need one.
func (sv *serving) retryIn(d time.Duration) {
	if sv.retry == nil {
		sv.retry = time.AfterFunc(d, func() { sv.retryDue.Store(true); sv.kick() })
		return
	}
	sv.retry.Reset(d)
}

// park gives sv up until the next kick, unless one came meanwhile.
func (sv *serving) park() bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.kicked {
		sv.kicked = false
		return false
	}
	sv.running = false
	return true
}

// end stops what kicks sv; it returns why.
func (sv *serving) end(why int) int {
	sv.mu.Lock()
	sv.over = true
	sv.mu.Unlock()
	sv.x.serving.CompareAndSwap(sv, nil)
	if sv.retry != nil {
		sv.retry.Stop()
	}
	sv.poll.Stop()
	sv.stopKick()
	return why
}

// serve maps the events waiting and runs the catch-up they call for, until
// nothing is left to do (parked), the session ends or ctx ends.
func (sv *serving) serve() int {
	x, ctx, sess := sv.x, sv.ctx, sv.sess
	for {
		if ctx.Err() != nil {
			return sv.end(stopping)
		}
		if sv.retryDue.Swap(false) {
			sv.waiting = false
		}
		if sv.pollDue.Swap(false) {
			sv.poll.Reset(jitter(x.b.cfg.CatchupInterval))
			sv.pending = true
			x.cu.Gapped()
		}
		up := false
		for {
			ev, open := sess.Next()
			if ev == nil {
				if !open {
					return sv.end(ended)
				}
				break
			}
			p, u := x.handle(ctx, ev)
			sv.pending = sv.pending || p
			up = up || u
		}
		// Catch-up needs only the HTTP API, not the socket: a poll or an
		// overflow while the socket is down is served too.
		if sv.pending && !sv.waiting {
			n, err := x.cu.Run(ctx, sess, sess.LoginTime())
			switch {
			case err != nil && ctx.Err() != nil:
				return sv.end(stopping)
			case err != nil:
				d := sv.failures.NextBackOff()
				x.log.Warn("catch-up failed; retrying", "err", err, "published", n, "retry_in", d)
				sv.retryIn(d)
				sv.waiting = true
			default:
				if n > 0 {
					x.log.Info("caught up", "records", n)
				}
				sv.failures.Reset()
				sv.pending = false
			}
		}
		// Online once the socket is up and catch-up was tried, or is
		// waiting for its backoff after a failure.
		if up {
			sv.bo.Reset()
			x.setState(ctx, stateOnline, "", 0)
		}
		if sv.park() {
			return parked
		}
	}
}
