package bridge

import (
	"context"

	"golang.org/x/time/rate"
)

// pbxLimiter bounds the requests sent to one PBX, across all extensions: at
// most n at once and r per second (with a burst of n), so that a restart of
// thousands of extensions or a burst of notifications never hammers it.
type pbxLimiter struct {
	slots chan struct{}
	rate  *rate.Limiter
}

func newPBXLimiter(perSecond float64, concurrent int) *pbxLimiter {
	return &pbxLimiter{slots: make(chan struct{}, concurrent), rate: rate.NewLimiter(rate.Limit(perSecond), concurrent)}
}

// Acquire waits for a slot and a token; the caller calls release when its
// request is done.
func (l *pbxLimiter) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := l.rate.Wait(ctx); err != nil {
		<-l.slots
		return nil, err
	}
	return func() { <-l.slots }, nil
}

// unthrottle lifts the rate limit (the concurrency bound stays): for the
// logouts of a shutdown, which must all fit in its deadline.
func (l *pbxLimiter) unthrottle() {
	l.rate.SetLimit(rate.Inf)
}
