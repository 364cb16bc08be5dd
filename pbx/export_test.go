package pbx

import (
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

// RuntimeErrorFor exposes the runtime-error rules to the external tests: the
// runtime error a decoded frame raises for a session of username in plan mode
// plan ("en"/"cn") with userAgent, or nil.
func RuntimeErrorFor(f Frame, username, plan, userAgent string) error {
	if rt := (runtimeRules{username: username, plan: plan, userAgent: userAgent}).check(f); rt != nil {
		return rt
	}
	return nil
}

// SDKHost exposes getproduct's host parameter for a PBX URL to the external
// tests.
func SDKHost(rawURL string) (string, error) {
	u, err := ParseOrigin(rawURL)
	if err != nil {
		return "", err
	}
	return sdkHost(u), nil
}

// ReconnectDelays returns the first n reconnect delays of a session with
// these bounds.
func ReconnectDelays(minDelay, maxDelay time.Duration, n int) []time.Duration {
	r := wire.NewReconnectDelays(minDelay, maxDelay)
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = r.Next()
	}
	return out
}

// DecodeCDRResult exposes the searchpersonal answer decoder to the fuzz
// target.
func DecodeCDRResult(data []byte) (*CDRResult, []FieldProblem, error) { return decodeCDRResult(data) }
