package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/pbx-bridge/pbx-bridge/bridge/catchup"
	"github.com/pbx-bridge/pbx-bridge/bridge/fleet"
	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// Credential is one extension the bridge logs in as.
type Credential struct {
	Username string
	Secret   string
}

// Config is everything a Bridge needs besides its NATS connection. The
// binary builds it from the YAML file; tests build it directly.
type Config struct {
	// Prefix is the first subject token(s), "pbx" by default.
	Prefix string
	// PBX is the template for every extension's session: URL, TLS, user
	// agent and timings. Username and Secret are taken from Extensions.
	PBX pbx.Config
	// Extensions to serve. With OpenAPI credentials a Secret may be empty:
	// the bridge mints the extension's signature.
	Extensions []Credential
	// OpenAPI, when its AccessID is set, lets the bridge mint the login
	// signatures itself and list the PBX's extensions (Discovery).
	OpenAPI OpenAPIConfig
	// Discovery serves the PBX's extensions as its extension list says.
	Discovery DiscoveryConfig
	// Events publishes live calls from the PBX's OpenAPI event socket.
	Events EventsConfig
	// AllowCallControl serves the call control requests (call.dial,
	// hangup, hold, unhold, transfer, list): default false, since they
	// let anyone on NATS who may publish there ring and drive phones.
	AllowCallControl bool
	// Fleet makes the bridge one of several replicas sharing the
	// extensions through leases.
	Fleet FleetConfig
	// Metrics configures the Prometheus metrics; see MetricsConfig.
	Metrics MetricsConfig
	// RequestTimeout bounds one request/reply call to the PBX (default 15s).
	RequestTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to (re)start a
	// session that could not log in (default 1s and 2m).
	RetryMin, RetryMax time.Duration
	// ShutdownTimeout bounds the logout of every extension on shutdown
	// (default 10s).
	ShutdownTimeout time.Duration
	// MaxInflight bounds request/reply calls running at once (default 64).
	MaxInflight int
	// JetStream configures durable delivery; see JetStreamConfig.
	JetStream JetStreamConfig
	// FirstStart says what an extension without a cursor publishes.
	FirstStart FirstStart
	// CatchupMaxPages bounds the CDR pages one catch-up scan reads
	// (default 2,000); a gap deeper than that is read on in further scans,
	// and published oldest first all the same. A tuning knob, chiefly for
	// tests: the default holds 200,000 records at the SDK's page size.
	CatchupMaxPages int
	// CatchupInterval is how often an online extension checks the PBX for
	// records that came without a notification (default 5m, ±10% jitter).
	CatchupInterval time.Duration
	// PBXRate and PBXConcurrency limit the HTTP requests sent to the PBX,
	// across all extensions: requests per second (default 20) and at once
	// (default 8). Logins, catch-up and request/reply all count.
	PBXRate        float64
	PBXConcurrency int
	// Version is reported by the micro service (default "0.0.0-dev").
	Version string
	Logger  *slog.Logger
	// now is the clock; tests may replace it.
	now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 15 * time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 2 * time.Minute
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 64
	}
	if c.Version == "" {
		c.Version = "0.0.0-dev"
	}
	if c.Discovery.Interval <= 0 {
		c.Discovery.Interval = 5 * time.Minute
	}
	fleetDefaults(&c.Fleet)
	if c.CatchupMaxPages <= 0 {
		c.CatchupMaxPages = catchup.MaxScanPages
	}
	if c.CatchupInterval <= 0 {
		c.CatchupInterval = 5 * time.Minute
	}
	if c.PBXRate <= 0 {
		c.PBXRate = 20
	}
	if c.PBXConcurrency <= 0 {
		c.PBXConcurrency = 8
	}
	c.JetStream.setDefaults()
	if c.FirstStart.Mode == "" {
		c.FirstStart.Mode = "none"
	}
	if c.FirstStart.Last == 0 {
		c.FirstStart.Last = 20
	}
	if c.FirstStart.Since == 0 {
		c.FirstStart.Since = 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// Validate reports every problem of the configuration at once (a
// *multierror.Error, one line per problem), each naming its entry.
func (c *Config) Validate() error {
	var errs []error
	prefix := c.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := ValidPrefix(prefix); err != nil {
		errs = append(errs, fmt.Errorf("subject_prefix: %w", err))
	}
	minting := c.OpenAPI.AccessID != ""
	if (c.OpenAPI.AccessID == "") != (c.OpenAPI.AccessKey == "") {
		errs = append(errs, errors.New("pbx.openapi: access_id and access_key go together"))
	}
	if len(c.Extensions) == 0 && !c.Discovery.Enabled {
		errs = append(errs, errors.New("extensions: at least one extension is required (or discovery.enabled with pbx.openapi credentials)"))
	}
	errs = append(errs, c.validateFleet()...)
	errs = append(errs, c.validateEvents()...)
	if c.Discovery.Enabled && !minting {
		errs = append(errs, errors.New("discovery.enabled: needs pbx.openapi.access_id and access_key to list the PBX's extensions"))
	}
	if c.Discovery.Interval < 0 {
		errs = append(errs, fmt.Errorf("discovery.interval: must be positive (default 5m), got %s", c.Discovery.Interval))
	}
	for _, list := range []struct {
		key      string
		patterns []string
	}{{"discovery.include", c.Discovery.Include}, {"discovery.exclude", c.Discovery.Exclude}} {
		key := list.key
		for i, p := range list.patterns {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				errs = append(errs, fmt.Errorf("%s[%d]: bad pattern %q: a glob as path.Match reads it, e.g. \"1*\" or \"10[0-4]?\"", key, i, p))
			}
		}
	}
	errs = append(errs, c.validateExtensions(minting)...)
	switch fs := c.FirstStart; fs.Mode {
	case "", "none":
	case "last":
		if fs.Last < 0 {
			errs = append(errs, fmt.Errorf("catchup.last: must be >= 1 (default 20), got %d", fs.Last))
		}
	case "since":
		if fs.Since < 0 {
			errs = append(errs, fmt.Errorf("catchup.since: must be positive (default 24h), got %s", fs.Since))
		}
	default:
		errs = append(errs, fmt.Errorf("catchup.first_start: %q is none of none, last, since", fs.Mode))
	}
	errs = append(errs, c.JetStream.validate()...)
	if ua := c.PBX.UserAgent; ua != "" && ua != pbx.UserAgentWebClient && ua != pbx.UserAgentWebPC {
		errs = append(errs, fmt.Errorf("pbx.user_agent: %q is neither %s nor %s", ua, pbx.UserAgentWebClient, pbx.UserAgentWebPC))
	}
	probe := c.PBX
	probe.Username, probe.Secret, probe.UserAgent = "probe", "probe", ""
	if _, err := pbx.NewClient(probe); err != nil {
		key := "pbx"
		switch {
		case errors.Is(err, pbx.ErrInvalidPBXURL) || errors.Is(err, pbx.ErrPBXURLNotHTTPS):
			key = "pbx.url"
		case c.PBX.InsecureSkipVerify && (c.PBX.CAFile != "" || c.PBX.RootCAs != nil):
			key = "pbx.insecure_skip_verify"
		}
		errs = append(errs, fmt.Errorf("%s: %w", key, err))
	}
	return multierror.Append(nil, errs...).ErrorOrNil()
}

// OpenAPIConfig holds the PBX's OpenAPI credentials: the Linkus SDK's
// AccessID and AccessKey (Integrations > Linkus SDK), or an API
// application's Client ID and Client Secret (Integrations > API).
type OpenAPIConfig struct {
	AccessID  string
	AccessKey string
}

// MetricsConfig configures the Prometheus metrics.
type MetricsConfig struct {
	// PerExtension labels the series about one extension (session state,
	// catch-up records and lag, reconnects, cursor resets) by extension
	// ("ext"). Off by default: that is 7 series or more per extension,
	// about 2.5 KiB of heap each; without it the same names carry the
	// bridge's totals (the state: how many extensions are in it; the lag:
	// the largest).
	PerExtension bool
}

// DiscoveryConfig makes the bridge serve every extension of the PBX's
// OpenAPI extension list that matches, besides the configured ones, and
// follow the list as it changes.
type DiscoveryConfig struct {
	Enabled bool
	// Interval between two readings of the list (default 5m).
	Interval time.Duration
	// Include and Exclude are glob patterns on the extension number, as
	// path.Match reads them; an empty Include includes every number, and
	// Exclude wins over Include.
	Include, Exclude []string
}

// JetStreamConfig configures durable delivery.
type JetStreamConfig struct {
	// Disabled publishes to core NATS instead: no acknowledgement, no
	// durable cursor (see the README for what is lost).
	Disabled bool
	// Stream captures the records, cdr.created and call.missed (default
	// "PBX_EVENTS"); it is bounded by MaxAge only.
	Stream string
	// Signals configures the stream of every other event.
	Signals SignalsConfig
	// CheckOnly makes the bridge check that the streams exist and capture
	// the event subjects instead of creating or updating them.
	CheckOnly bool
	// DuplicateWindow is the stream's de-duplication window (default 1h).
	DuplicateWindow time.Duration
	// MaxAge bounds how long events are kept (default 7 days).
	MaxAge time.Duration
	// Replicas of the stream and the cursor bucket (default 1).
	Replicas int
	// CursorBucket is the KV bucket of the per-extension cursors (default
	// "pbx_bridge_cursors").
	CursorBucket string
	// AckTimeout bounds the wait for one publish acknowledgement before it
	// is retried (default 5s).
	AckTimeout time.Duration
}

// SignalsConfig configures the stream of the signal events (cdr.changed,
// session.*, runtime.error, notify.*): a PBX can send notifications without
// end, so this stream has size limits the records stream must never have.
type SignalsConfig struct {
	// Stream is its name (default "PBX_SIGNALS").
	Stream string
	// MaxBytes bounds the stream's size; the oldest go first (default 1 GiB).
	MaxBytes int64
	// MaxMsgsPerSubject bounds the events kept per subject, i.e. per
	// extension and kind (default 10,000).
	MaxMsgsPerSubject int64
	// MaxAge bounds how long they are kept (default 24h).
	MaxAge time.Duration
}

func (j *JetStreamConfig) setDefaults() {
	if j.Signals.Stream == "" {
		j.Signals.Stream = "PBX_SIGNALS"
	}
	if j.Signals.MaxBytes <= 0 {
		j.Signals.MaxBytes = 1 << 30
	}
	if j.Signals.MaxMsgsPerSubject <= 0 {
		j.Signals.MaxMsgsPerSubject = 10000
	}
	if j.Signals.MaxAge <= 0 {
		j.Signals.MaxAge = 24 * time.Hour
	}
	if j.Stream == "" {
		j.Stream = "PBX_EVENTS"
	}
	if j.DuplicateWindow <= 0 {
		j.DuplicateWindow = time.Hour
	}
	if j.MaxAge <= 0 {
		j.MaxAge = 7 * 24 * time.Hour
	}
	if j.Replicas <= 0 {
		j.Replicas = 1
	}
	if j.CursorBucket == "" {
		j.CursorBucket = "pbx_bridge_cursors"
	}
	if j.AckTimeout <= 0 {
		j.AckTimeout = 5 * time.Second
	}
}

// validName reports whether s is usable as a stream or bucket name.
func validName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return s != "" && len(s) <= 64
}

// Defaults that the command line shares (the others are set where the
// Config's other defaults are: setDefaults).
const (
	// DefaultPrefix is the subject prefix.
	DefaultPrefix = "pbx"
	// DefaultShutdownTimeout bounds the shutdown (and the command's NATS
	// drain after it).
	DefaultShutdownTimeout = 10 * time.Second
	// defaultLeaseTTL is the fleet's lease; leaseCoversLogout checks it
	// against the shutdown's.
	defaultLeaseTTL = 15 * time.Second
)

// FirstStart says what an extension publishes when it has no cursor yet
// (catchup.FirstStart).
type FirstStart = catchup.FirstStart

// FleetConfig makes the bridge one replica of a fleet (fleet.Config).
type FleetConfig = fleet.Config

// validateExtensions checks the configured extensions: valid usernames,
// each once, each with a secret or the OpenAPI credentials to mint one.
func (c *Config) validateExtensions(minting bool) []error {
	var errs []error
	seen := make(map[string]int)
	for i, e := range c.Extensions {
		if err := ValidToken(e.Username); err != nil {
			errs = append(errs, fmt.Errorf("extensions[%d].username: %w", i, err))
		}
		if e.Secret == "" && !minting {
			errs = append(errs, fmt.Errorf("extensions[%d].secret: empty (username %q), and no pbx.openapi credentials to mint it", i, e.Username))
		}
		if j, dup := seen[e.Username]; dup {
			errs = append(errs, fmt.Errorf("extensions[%d].username: %q is already extensions[%d]: one extension must never be logged in twice", i, e.Username, j))
		}
		seen[e.Username] = i
	}
	return errs
}

// validate checks the stream and bucket names and the signals' limits.
func (j JetStreamConfig) validate() []error {
	var errs []error
	if !j.Disabled && j.Stream != "" && !validName(j.Stream) {
		errs = append(errs, fmt.Errorf("jetstream.stream: %q is not a valid stream name", j.Stream))
	}
	if !j.Disabled && j.Signals.Stream != "" && !validName(j.Signals.Stream) {
		errs = append(errs, fmt.Errorf("jetstream.signals.stream: %q is not a valid stream name", j.Signals.Stream))
	}
	if !j.Disabled && j.Signals.Stream != "" && j.Signals.Stream == j.Stream {
		errs = append(errs, fmt.Errorf("jetstream.signals.stream: %q is also jetstream.stream: the records must not share the signals' size limits", j.Stream))
	}
	if s := j.Signals; s.MaxBytes < 0 || s.MaxMsgsPerSubject < 0 || s.MaxAge < 0 {
		errs = append(errs, errors.New("jetstream.signals: max_bytes, max_msgs_per_subject and max_age must not be negative"))
	}
	if !j.Disabled && j.CursorBucket != "" && !validName(j.CursorBucket) {
		errs = append(errs, fmt.Errorf("jetstream.cursor_bucket: %q is not a valid bucket name", j.CursorBucket))
	}
	return errs
}
