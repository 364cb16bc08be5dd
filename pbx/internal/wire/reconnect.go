package wire

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// ReconnectDelays yields a socket's reconnect delays: exponential from the
// minimum, doubling, jittered by 25%, and never above the maximum.
// (backoff caps the interval before it adds the jitter, so on its own the
// delay could exceed the maximum by a quarter.)
type ReconnectDelays struct {
	b   *backoff.ExponentialBackOff
	max time.Duration
}

// NewReconnectDelays returns the delays from minDelay up to maxDelay.
func NewReconnectDelays(minDelay, maxDelay time.Duration) *ReconnectDelays {
	return &ReconnectDelays{
		b: backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(minDelay),
			backoff.WithMaxInterval(maxDelay),
			backoff.WithMaxElapsedTime(0),
			backoff.WithRandomizationFactor(0.25),
			backoff.WithMultiplier(2),
		),
		max: maxDelay,
	}
}

// Next returns the next delay.
func (r *ReconnectDelays) Next() time.Duration { return min(r.b.NextBackOff(), r.max) }

// Reset starts the delays over from the minimum.
func (r *ReconnectDelays) Reset() { r.b.Reset() }
