package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/hashicorp/go-multierror"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx"
)

// duration reads "10s", "5m", "1h30m" from YAML.
type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (like 10s, 5m): %q", b)
	}
	*d = duration(v)
	return nil
}

func (d duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// perExtensionFlag is metrics.per_extension: its own type so that a value
// that is not a boolean is refused naming the key (the YAML decoder names
// only the struct of a plain bool).
type perExtensionFlag bool

func (f *perExtensionFlag) UnmarshalText(b []byte) error {
	switch string(b) {
	case "true":
		*f = true
	case "false":
		*f = false
	default:
		return fmt.Errorf("metrics.per_extension: %q is neither true nor false", b)
	}
	return nil
}

// fileConfig is the YAML configuration file; configs/pbx-bridge.example.yaml
// documents every key.
type fileConfig struct {
	NATS struct {
		URL       string `yaml:"url"`
		Listen    string `yaml:"listen"`
		StoreDir  string `yaml:"store_dir"`
		Name      string `yaml:"name"`
		CredsFile string `yaml:"creds_file"`
		NKeyFile  string `yaml:"nkey_file"`
		User      string `yaml:"user"`
		Password  string `yaml:"password"`
		Token     string `yaml:"token"`
		TLS       struct {
			CAFile   string `yaml:"ca_file"`
			CertFile string `yaml:"cert_file"`
			KeyFile  string `yaml:"key_file"`
		} `yaml:"tls"`
	} `yaml:"nats"`
	SubjectPrefix string `yaml:"subject_prefix"`
	PBX           struct {
		URL                string   `yaml:"url"`
		CAFile             string   `yaml:"ca_file"`
		InsecureSkipVerify bool     `yaml:"insecure_skip_verify"`
		UserAgent          string   `yaml:"user_agent"`
		RequestTimeout     duration `yaml:"request_timeout"`
		Heartbeat          struct {
			PingAfter      duration `yaml:"ping_after"`
			PongTimeout    duration `yaml:"pong_timeout"`
			KeepaliveEvery duration `yaml:"keepalive_every"`
		} `yaml:"heartbeat"`
		Reconnect struct {
			Min duration `yaml:"min"`
			Max duration `yaml:"max"`
		} `yaml:"reconnect"`
		LoginRetry struct {
			Min duration `yaml:"min"`
			Max duration `yaml:"max"`
		} `yaml:"login_retry"`
		MaxFrameBytes  int64    `yaml:"max_frame_bytes"`
		EventBuffer    int      `yaml:"event_buffer"`
		DeliverTimeout duration `yaml:"deliver_timeout"`
		RateLimit      struct {
			RequestsPerSecond float64 `yaml:"requests_per_second"`
			MaxConcurrent     int     `yaml:"max_concurrent"`
		} `yaml:"rate_limit"`
		OpenAPI struct {
			AccessID  string `yaml:"access_id"`
			AccessKey string `yaml:"access_key"`
		} `yaml:"openapi"`
	} `yaml:"pbx"`
	JetStream struct {
		Enabled *bool  `yaml:"enabled"`
		Stream  string `yaml:"stream"`
		Signals struct {
			Stream            string   `yaml:"stream"`
			MaxBytes          int64    `yaml:"max_bytes"`
			MaxMsgsPerSubject int64    `yaml:"max_msgs_per_subject"`
			MaxAge            duration `yaml:"max_age"`
		} `yaml:"signals"`
		CreateStream    *bool    `yaml:"create_stream"`
		DuplicateWindow duration `yaml:"duplicate_window"`
		MaxAge          duration `yaml:"max_age"`
		Replicas        int      `yaml:"replicas"`
		CursorBucket    string   `yaml:"cursor_bucket"`
		AckTimeout      duration `yaml:"ack_timeout"`
	} `yaml:"jetstream"`
	Catchup struct {
		Interval   duration `yaml:"interval"`
		FirstStart string   `yaml:"first_start"`
		Last       int      `yaml:"last"`
		Since      duration `yaml:"since"`
	} `yaml:"catchup"`
	Metrics struct {
		Listen       string           `yaml:"listen"`
		PerExtension perExtensionFlag `yaml:"per_extension"`
	} `yaml:"metrics"`
	Discovery struct {
		Enabled  bool     `yaml:"enabled"`
		Interval duration `yaml:"interval"`
		Include  []string `yaml:"include"`
		Exclude  []string `yaml:"exclude"`
	} `yaml:"discovery"`
	Fleet struct {
		Enabled     bool     `yaml:"enabled"`
		Replica     string   `yaml:"replica"`
		LeaseBucket string   `yaml:"lease_bucket"`
		LeaseTTL    duration `yaml:"lease_ttl"`
		// ReleaseOfflineAfter and OfflineCooldown: see bridge.FleetConfig.
		ReleaseOfflineAfter duration `yaml:"release_offline_after"`
		OfflineCooldown     duration `yaml:"offline_cooldown"`
	} `yaml:"fleet"`
	Extensions []struct {
		Username string `yaml:"username"`
		Secret   string `yaml:"secret"`
	} `yaml:"extensions"`
	Requests struct {
		Timeout          duration `yaml:"timeout"`
		MaxInflight      int      `yaml:"max_inflight"`
		AllowCallControl bool     `yaml:"allow_call_control"`
	} `yaml:"requests"`
	Events struct {
		Enabled bool  `yaml:"enabled"`
		Topics  []int `yaml:"topics"`
	} `yaml:"events"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	ShutdownTimeout duration `yaml:"shutdown_timeout"`
}

// loadConfig reads, expands and checks a configuration file. Every problem
// is reported, each naming its key.
func loadConfig(path string) (*fileConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(raw)
}

func parseConfig(raw []byte) (*fileConfig, error) {
	var fc fileConfig
	if err := yaml.UnmarshalWithOptions(raw, &fc, yaml.DisallowUnknownField()); err != nil {
		// Position only, no source excerpt: the lines around an error may
		// hold a secret.
		return nil, fmt.Errorf("config: %s", yaml.FormatError(err, false, false))
	}
	var errs *multierror.Error
	expandEnv(reflect.ValueOf(&fc).Elem(), "", &errs)
	fc.setDefaults()
	// Report every problem at once: an unset variable does not hide the rest.
	if err := fc.check(); err != nil {
		var me *multierror.Error
		if errors.As(err, &me) {
			errs = multierror.Append(errs, me.Errors...)
		} else {
			errs = multierror.Append(errs, err)
		}
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, err
	}
	return &fc, nil
}

func (fc *fileConfig) setDefaults() {
	if fc.NATS.Listen == "" {
		fc.NATS.Listen = "127.0.0.1:4222"
	}
	if fc.NATS.StoreDir == "" {
		fc.NATS.StoreDir = "data/nats"
	}
	if fc.NATS.Name == "" {
		fc.NATS.Name = "pbx-bridge"
	}
	if fc.SubjectPrefix == "" {
		fc.SubjectPrefix = bridge.DefaultPrefix
	}
	if fc.PBX.UserAgent == "" {
		fc.PBX.UserAgent = pbx.UserAgentWebClient
	}
	if fc.Log.Level == "" {
		fc.Log.Level = "info"
	}
	if fc.Log.Format == "" {
		fc.Log.Format = "text"
	}
}

// check reports the problems that are not the bridge's to find: NATS
// options, logging, files.
func (fc *fileConfig) check() error {
	var errs []error
	if _, err := parseLevel(fc.Log.Level); err != nil {
		errs = append(errs, fmt.Errorf("log.level: %w", err))
	}
	if fc.Log.Format != "text" && fc.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q is neither text nor json", fc.Log.Format))
	}
	auth := 0
	for _, set := range []bool{fc.NATS.CredsFile != "", fc.NATS.NKeyFile != "", fc.NATS.User != "", fc.NATS.Token != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		errs = append(errs, errors.New("nats: set at most one of creds_file, nkey_file, user/password, token"))
	}
	if fc.Metrics.PerExtension && fc.Metrics.Listen == "" {
		errs = append(errs, errors.New("metrics.per_extension: needs metrics.listen: nothing serves the series without it"))
	}
	if (fc.NATS.User == "") != (fc.NATS.Password == "") {
		errs = append(errs, errors.New("nats: user and password go together"))
	}
	if (fc.NATS.TLS.CertFile == "") != (fc.NATS.TLS.KeyFile == "") {
		errs = append(errs, errors.New("nats.tls: cert_file and key_file go together"))
	}
	for key, f := range map[string]string{
		"nats.creds_file": fc.NATS.CredsFile, "nats.nkey_file": fc.NATS.NKeyFile,
		"nats.tls.ca_file": fc.NATS.TLS.CAFile, "nats.tls.cert_file": fc.NATS.TLS.CertFile,
		"nats.tls.key_file": fc.NATS.TLS.KeyFile, "pbx.ca_file": fc.PBX.CAFile,
	} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	bc := fc.bridgeConfig(nil)
	if err := bc.Validate(); err != nil {
		var me *multierror.Error
		if errors.As(err, &me) {
			errs = append(errs, me.Errors...)
		} else {
			errs = append(errs, err)
		}
	}
	return multierror.Append(nil, errs...).ErrorOrNil()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// bridgeConfig maps the file onto the bridge's configuration.
func (fc *fileConfig) bridgeConfig(log *slog.Logger) bridge.Config {
	c := bridge.Config{
		Prefix: fc.SubjectPrefix,
		PBX: pbx.Config{
			URL:                fc.PBX.URL,
			CAFile:             fc.PBX.CAFile,
			InsecureSkipVerify: fc.PBX.InsecureSkipVerify,
			UserAgent:          fc.PBX.UserAgent,
			RequestTimeout:     time.Duration(fc.PBX.RequestTimeout),
			PingAfter:          time.Duration(fc.PBX.Heartbeat.PingAfter),
			PongTimeout:        time.Duration(fc.PBX.Heartbeat.PongTimeout),
			KeepaliveEvery:     time.Duration(fc.PBX.Heartbeat.KeepaliveEvery),
			ReconnectMin:       time.Duration(fc.PBX.Reconnect.Min),
			ReconnectMax:       time.Duration(fc.PBX.Reconnect.Max),
			MaxFrameBytes:      fc.PBX.MaxFrameBytes,
			EventBuffer:        fc.PBX.EventBuffer,
			DeliverTimeout:     time.Duration(fc.PBX.DeliverTimeout),
		},
		JetStream: bridge.JetStreamConfig{
			Disabled: fc.JetStream.Enabled != nil && !*fc.JetStream.Enabled,
			Stream:   fc.JetStream.Stream,
			Signals: bridge.SignalsConfig{
				Stream:            fc.JetStream.Signals.Stream,
				MaxBytes:          fc.JetStream.Signals.MaxBytes,
				MaxMsgsPerSubject: fc.JetStream.Signals.MaxMsgsPerSubject,
				MaxAge:            time.Duration(fc.JetStream.Signals.MaxAge),
			},
			CheckOnly:       fc.JetStream.CreateStream != nil && !*fc.JetStream.CreateStream,
			DuplicateWindow: time.Duration(fc.JetStream.DuplicateWindow),
			MaxAge:          time.Duration(fc.JetStream.MaxAge),
			Replicas:        fc.JetStream.Replicas,
			CursorBucket:    fc.JetStream.CursorBucket,
			AckTimeout:      time.Duration(fc.JetStream.AckTimeout),
		},
		FirstStart: bridge.FirstStart{
			Mode:  fc.Catchup.FirstStart,
			Last:  fc.Catchup.Last,
			Since: time.Duration(fc.Catchup.Since),
		},
		CatchupInterval: time.Duration(fc.Catchup.Interval),
		PBXRate:         fc.PBX.RateLimit.RequestsPerSecond,
		PBXConcurrency:  fc.PBX.RateLimit.MaxConcurrent,
		RetryMin:        time.Duration(fc.PBX.LoginRetry.Min),
		RetryMax:        time.Duration(fc.PBX.LoginRetry.Max),
		RequestTimeout:  time.Duration(fc.Requests.Timeout),
		MaxInflight:     fc.Requests.MaxInflight,
		Events:          bridge.EventsConfig{Enabled: fc.Events.Enabled, Topics: fc.Events.Topics},

		AllowCallControl: fc.Requests.AllowCallControl,
		ShutdownTimeout:  time.Duration(fc.ShutdownTimeout),
		OpenAPI: bridge.OpenAPIConfig{
			AccessID:  fc.PBX.OpenAPI.AccessID,
			AccessKey: fc.PBX.OpenAPI.AccessKey,
		},
		Fleet: bridge.FleetConfig{
			Enabled:     fc.Fleet.Enabled,
			Replica:     fc.Fleet.Replica,
			LeaseBucket: fc.Fleet.LeaseBucket,
			LeaseTTL:    time.Duration(fc.Fleet.LeaseTTL),

			ReleaseOfflineAfter: time.Duration(fc.Fleet.ReleaseOfflineAfter),
			OfflineCooldown:     time.Duration(fc.Fleet.OfflineCooldown),
		},
		Discovery: bridge.DiscoveryConfig{
			Enabled:  fc.Discovery.Enabled,
			Interval: time.Duration(fc.Discovery.Interval),
			Include:  fc.Discovery.Include,
			Exclude:  fc.Discovery.Exclude,
		},
		Metrics: bridge.MetricsConfig{PerExtension: bool(fc.Metrics.PerExtension)},
		Version: version,
		Logger:  log,
	}
	c.Extensions = fc.credentials()
	return c
}

// credentials are the extensions listed in the file.
func (fc *fileConfig) credentials() []bridge.Credential {
	var out []bridge.Credential
	for _, e := range fc.Extensions {
		out = append(out, bridge.Credential{Username: e.Username, Secret: e.Secret})
	}
	return out
}
