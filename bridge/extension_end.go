package bridge

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// How an extension's session ends (a runtime error, the bridge's shutdown,
// a logout), what the request endpoints read of the session it has, and
// the small helpers of its supervision.

// stop gives the extension up after a runtime error: the event says which,
// the state says stopped.
func (x *extension) stop(ctx context.Context, e *pbx.Error, err error) {
	x.log.Error("runtime error: extension stopped", "code", e.Code, "name", e.Name, "err", err)
	x.mu.Lock()
	x.terminal = e
	x.mu.Unlock()
	x.publish(ctx, func(now time.Time) (outEvent, error) {
		return x.f.runtimeError(x.extInfo(), e, err.Error(), "stopped", now)
	})
	x.setState(ctx, stateStopped, err.Error(), e.Code)
}

// shutdown ends a live session on the bridge's shutdown: log out, close,
// and say so, all within the shutdown's deadline.
//
// The session goes first (Logout closes the socket, then logs out), the
// event last: in a fleet the lease may be about to go to another replica,
// and a NATS outage must not keep the socket open while the event waits.
func (x *extension) shutdown(sess *pbx.Session) {
	ctx, cancel := x.finalCtx()
	defer cancel()
	x.detach()
	lctx, lcancel := context.WithTimeout(ctx, x.b.cfg.logoutTimeout())
	err := x.logoutCtx(lctx, sess)
	lcancel()
	if err != nil && x.stopReason() == "shutdown" {
		x.b.logoutFailures.Add(1)
	}
	x.setState(ctx, stateStopped, x.stopReason(), 0)
}

// finalCtx bounds the last words of a supervisor whose context ended: the
// shutdown's deadline, or ShutdownTimeout for an extension removed while
// the bridge runs.
func (x *extension) finalCtx() (context.Context, context.CancelFunc) {
	if by := x.b.shutdownBy.Load(); by != nil {
		return context.WithDeadline(context.Background(), *by)
	}
	return context.WithTimeout(context.Background(), x.b.cfg.ShutdownTimeout)
}

// logout logs the session out, bounded; the PBX may have dropped the token
// already, so a failure is only logged.
func (x *extension) logout(sess *pbx.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), x.b.cfg.logoutTimeout())
	defer cancel()
	x.logoutCtx(ctx, sess)
}

func (x *extension) logoutCtx(ctx context.Context, sess *pbx.Session) error {
	if err := sess.Logout(ctx); err != nil {
		x.log.Debug("logout failed", "err", err)
		return err
	}
	x.log.Info("logged out")
	return nil
}

func (x *extension) attach(sess *pbx.Session) {
	x.mu.Lock()
	x.sess, x.info = sess, sess.Extension()
	x.mu.Unlock()
}

func (x *extension) detach() {
	x.mu.Lock()
	x.sess = nil
	x.mu.Unlock()
}

func (x *extension) extInfo() pbx.Extension {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.info
}

// onlineSession returns the session if the extension is online, or a 503.
func (x *extension) onlineSession() (*pbx.Session, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sess == nil || x.state != stateOnline {
		return nil, &apiError{code: codeUnavailable, msg: "extension " + x.number + " is " + x.state}
	}
	return x.sess, nil
}

func (x *extension) infoReply() schema.Info {
	x.mu.Lock()
	defer x.mu.Unlock()
	return schema.Info{
		Extension: x.f.ref(x.info),
		PBX:       x.f.host,
		State:     x.state,
		Since:     x.since,
		Replica:   replicaName(x.b.cfg.Fleet),
	}
}

// isRuntime reports whether e is one of the runtime errors -106..-110.
func isRuntime(e *pbx.Error) bool {
	for _, r := range pbx.RuntimeErrors {
		if e == r {
			return true
		}
	}
	return false
}

func codeOf(err error) int {
	if e, ok := pbx.CodeOf(err); ok {
		return e.Code
	}
	return 0
}

// jitter returns d spread by ±10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// sleep waits d or until ctx ends; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
