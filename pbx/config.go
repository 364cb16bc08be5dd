package pbx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/wire"
)

// The user agents the SDK knows. The PBX checks a different client flag for
// each (enb_web_client, enb_desktop_client) and WebPC also subscribes to
// 20013.
const (
	UserAgentWebClient = "WebClient"
	UserAgentWebPC     = "WebPC"
)

// Defaults of Config's zero fields. The heartbeat and reconnect figures are
// the official SDK's.
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultPingAfter      = 30 * time.Second
	DefaultPongTimeout    = 20 * time.Second
	DefaultKeepaliveEvery = 35 * time.Second
	DefaultReconnectMin   = 5 * time.Second
	DefaultReconnectMax   = 60 * time.Second
	// DefaultMaxFrameBytes is 1 MiB less 16 KiB. The NATS server's default
	// max_payload is 1 MiB, and a notification's msg is never larger than
	// its frame (the frame holds it string-encoded), so an event built from
	// a frame under this limit fits in one NATS message with 16 KiB left
	// for the CloudEvents envelope.
	DefaultMaxFrameBytes  = 1<<20 - 16<<10
	DefaultEventBuffer    = 256
	DefaultDeliverTimeout = 5 * time.Second
)

// Config is what one extension's session (or a bare Client) needs. Zero
// fields take the defaults above.
type Config struct {
	// URL is the PBX's origin, "https://host[:port]". An http URL is
	// refused with ErrPBXURLNotHTTPS; one that does not parse, has no host,
	// or carries user info, a path, a query or a fragment with
	// ErrInvalidPBXURL.
	URL string
	// Username is the extension number.
	Username string
	// Secret is the login signature minted by the PBX's OpenAPI. It is a
	// credential: it is never logged and never put into an error.
	Secret string
	// UserAgent is UserAgentWebClient (the default) or UserAgentWebPC.
	UserAgent string

	// CAFile is a PEM file of the CAs to trust instead of the system roots.
	CAFile string
	// RootCAs is an alternative to CAFile; setting both is an error.
	RootCAs *x509.CertPool
	// InsecureSkipVerify turns certificate verification off. For lab PBXs
	// with self-signed certificates only; setting it with CAFile or RootCAs
	// is an error.
	InsecureSkipVerify bool
	// SessionCache, if set, keeps TLS sessions for the subscribe sockets
	// (and for an HTTP client built from these settings), so that the
	// sessions sharing it resume a TLS session on connect rather than run a
	// full handshake each: the PBX signs nothing and the client checks no
	// certificate chain again. Share it only between configurations with
	// the same TLS settings (see Shared).
	SessionCache tls.ClientSessionCache

	// RequestTimeout bounds each HTTP request, the socket handshake and
	// each socket write.
	RequestTimeout time.Duration
	// PingAfter: send "heartbeat" after this long without any incoming frame.
	PingAfter time.Duration
	// PongTimeout: close the socket if nothing arrives this long after that
	// heartbeat.
	PongTimeout time.Duration
	// KeepaliveEvery: also send "heartbeat" this long after an incoming
	// frame, repeating, until a "heartbeat response" arrives, so that the
	// PBX sees heartbeats on a busy socket too.
	KeepaliveEvery time.Duration
	// ReconnectMin is the first reconnect delay (the SDK's fixed 5 s).
	ReconnectMin time.Duration
	// ReconnectMax caps the exponential, jittered reconnect delay. There is
	// no limit on the number of attempts.
	ReconnectMax time.Duration
	// MaxFrameBytes is the read limit on socket frames; a larger frame
	// closes the socket (dropped as "too_large", then reconnect).
	MaxFrameBytes int64
	// EventBuffer is how many events may wait to be taken (Session.Next);
	// the storage grows as they wait.
	EventBuffer int
	// DeliverTimeout is how long the socket reader waits for room when
	// EventBuffer events wait, before it drops (see the package doc).
	DeliverTimeout time.Duration

	// Logger receives the package's logs, with the attribute "ext". Default
	// slog.Default().
	Logger *slog.Logger
	// Hooks are optional observation callbacks.
	Hooks Hooks
	// HTTPClient, if set, makes the API requests; if nil one is built from
	// the TLS fields. The subscribe socket always uses the TLS fields (or,
	// when none is set, the TLS config of HTTPClient's *http.Transport).
	HTTPClient *http.Client
	// Limiter, if set, is asked for a slot before every HTTP API request,
	// so that many sessions can share one budget towards their PBX.
	Limiter Limiter
	// ProductCache, if set, shares the PBX's getproduct answer between the
	// sessions of one PBX: only the first Open of a process, and the first
	// after the PBX was unreachable or switched over, asks for it. Nil:
	// every Open asks, as the SDK's init does.
	ProductCache *ProductCache

	// tls, set by Shared, shares the TLS configurations between the
	// sessions made from it.
	tls *tlsShare
}

// Limiter bounds the requests sent to a PBX. Acquire blocks until a request
// may go (or ctx ends) and returns the function that gives the slot back.
type Limiter interface {
	Acquire(ctx context.Context) (release func(), err error)
}

// Hooks observe a session (for metrics, and EventsReady for a consumer).
// Nil functions are skipped. They are
// called from the session's goroutines and the callers' and must not block.
type Hooks struct {
	// Request follows every HTTP API call; endpoint is the path after
	// /api/v1.0/, e.g. "login" or "cdr/searchpersonal".
	Request func(endpoint string, d time.Duration, err error)
	// FrameDropped follows every dropped socket frame or event, with one of
	// the DropReason values as a string.
	FrameDropped func(reason string)
	// Reconnect precedes each reconnect attempt of the socket.
	Reconnect func()
	// DecodeProblem follows every field of a PBX body that could not be
	// read as its type and was left at its zero value (total_number at
	// -1): endpoint is the API endpoint ("cdr/searchpersonal") or
	// "socket:<type>" for a notification ("socket:20049"), field its path
	// ("personal_cdr_list[3].id"). It is called for each one; the warnings
	// logged beside it are sampled.
	DecodeProblem func(endpoint, field string)
	// EventsReady follows each event queued for Session.Next, and the end
	// of the events, on the socket's goroutine: a consumer can take events
	// without a goroutine of its own waiting on Session.Ready. It must not
	// block (start a goroutine, or signal one).
	EventsReady func()
}

// Shared returns cfg made ready to be the template of many sessions of one
// PBX (as a bridge's extensions are), filling what cfg does not set: the
// CA file read once into RootCAs instead of once per session, one TLS
// session cache, one ProductCache, and the TLS configurations built once.
// Each of these is then shared by every session made from the result.
func (cfg Config) Shared() (Config, error) {
	if cfg.CAFile != "" && cfg.RootCAs == nil {
		tc, err := cfg.tlsConfig()
		if err != nil {
			return cfg, err
		}
		cfg.RootCAs, cfg.CAFile = tc.RootCAs, ""
	}
	if cfg.SessionCache == nil {
		cfg.SessionCache = tls.NewLRUClientSessionCache(sessionCacheSize)
	}
	if cfg.ProductCache == nil {
		cfg.ProductCache = NewProductCache()
	}
	if cfg.tls == nil {
		cfg.tls = &tlsShare{}
	}
	return cfg, nil
}

// sessionCacheSize bounds a shared TLS session cache. Its entries are per
// server name: one PBX needs one.
const sessionCacheSize = 16

// withDefaults validates cfg's fields other than URL and TLS, and fills the
// zero ones.
func (cfg Config) withDefaults() (Config, error) {
	switch cfg.UserAgent {
	case "":
		cfg.UserAgent = UserAgentWebClient
	case UserAgentWebClient, UserAgentWebPC:
	default:
		return cfg, fmt.Errorf("%w: UserAgent %q is neither %q nor %q", ErrInvalidConfig, cfg.UserAgent, UserAgentWebClient, UserAgentWebPC)
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"RequestTimeout", &cfg.RequestTimeout, DefaultRequestTimeout},
		{"PingAfter", &cfg.PingAfter, DefaultPingAfter},
		{"PongTimeout", &cfg.PongTimeout, DefaultPongTimeout},
		{"KeepaliveEvery", &cfg.KeepaliveEvery, DefaultKeepaliveEvery},
		{"ReconnectMin", &cfg.ReconnectMin, DefaultReconnectMin},
		{"ReconnectMax", &cfg.ReconnectMax, DefaultReconnectMax},
		{"DeliverTimeout", &cfg.DeliverTimeout, DefaultDeliverTimeout},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return cfg, fmt.Errorf("%w: %s is negative", ErrInvalidConfig, d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = cfg.ReconnectMin
	}
	if cfg.MaxFrameBytes < 0 || cfg.EventBuffer < 0 {
		return cfg, fmt.Errorf("%w: MaxFrameBytes and EventBuffer must not be negative", ErrInvalidConfig)
	}
	if cfg.MaxFrameBytes == 0 {
		cfg.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if cfg.EventBuffer == 0 {
		cfg.EventBuffer = DefaultEventBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("ext", cfg.Username)
	return cfg, nil
}

// ParseOrigin checks a PBX URL as Config.URL must be, the way the SDK does
// (-2, -3), and returns its origin; the OpenAPI client (pbx/openapi) checks
// its URL with it too. It is stricter than the SDK about paths and user
// info: the API lives at the origin's /api, so a path would be silently
// dropped, and user info would be a credential in a config string.
func ParseOrigin(raw string) (*url.URL, error) {
	shown := Redact(raw)
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("pbx: PBX URL %q does not parse: %w", shown, ErrInvalidPBXURL)
	}
	switch {
	case u.Scheme == "" || u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("pbx: PBX URL %q has no scheme://host: %w", shown, ErrInvalidPBXURL)
	case u.Scheme != "https":
		return nil, fmt.Errorf("pbx: PBX URL %q is not https: %w", shown, ErrPBXURLNotHTTPS)
	case u.User != nil:
		return nil, fmt.Errorf("pbx: PBX URL %q carries user info: %w", shown, ErrInvalidPBXURL)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("pbx: PBX URL %q must be an origin, https://host[:port], without path, query or fragment: %w", shown, ErrInvalidPBXURL)
	}
	return &url.URL{Scheme: "https", Host: u.Host}, nil
}

// tlsConfig builds the TLS settings of both the API client and the socket.
func (cfg Config) tlsConfig() (*tls.Config, error) {
	tc, err := wire.TLSConfig(wire.TLSOptions{CAFile: cfg.CAFile, RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify,
		HTTPClient: cfg.HTTPClient, SessionCache: cfg.SessionCache})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return tc, nil
}
