package pbx_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

func TestNewClientURL(t *testing.T) {
	tests := []struct {
		url  string
		want *pbx.Error // nil: accepted
	}{
		{"https://pbx.example.com", nil},
		{"https://pbx.example.com:8088/", nil},
		{"HTTPS://pbx.example.com", nil},
		{"https://[::1]:8088", nil},
		{"http://pbx.example.com", pbx.ErrPBXURLNotHTTPS},
		{"ws://pbx.example.com", pbx.ErrPBXURLNotHTTPS},
		{"", pbx.ErrInvalidPBXURL},
		{"pbx.example.com", pbx.ErrInvalidPBXURL},
		{"https://", pbx.ErrInvalidPBXURL},
		{"http://", pbx.ErrInvalidPBXURL},
		{"https://:8088", pbx.ErrInvalidPBXURL},
		{"https://pbx example.com", pbx.ErrInvalidPBXURL},
		{"https://pbx.example.com:port", pbx.ErrInvalidPBXURL},
		{"https://admin:pw@pbx.example.com", pbx.ErrInvalidPBXURL},
		{"https://pbx.example.com/pbx", pbx.ErrInvalidPBXURL},
		{"https://pbx.example.com/?access_token=abc", pbx.ErrInvalidPBXURL},
		{"https://pbx.example.com/#x", pbx.ErrInvalidPBXURL},
		{"mailto:pbx@example.com", pbx.ErrInvalidPBXURL},
	}
	for _, tt := range tests {
		_, err := pbx.NewClient(pbx.Config{URL: tt.url, Username: "1001", Secret: "signature-0123456789"})
		switch {
		case tt.want == nil && err != nil:
			t.Errorf("NewClient(%q) = %v, want success", tt.url, err)
		case tt.want != nil && !errors.Is(err, tt.want):
			t.Errorf("NewClient(%q) = %v, want %v", tt.url, err, tt.want)
		case err != nil && (strings.Contains(err.Error(), "pw@") || strings.Contains(err.Error(), "access_token=abc")):
			t.Errorf("NewClient(%q) error shows a credential: %v", tt.url, err)
		}
	}
}

// TestOpenRefusesBadURLs needs no PBX: the URL is checked before any I/O.
func TestOpenRefusesBadURLs(t *testing.T) {
	ctx := context.Background()
	if _, err := pbx.Open(ctx, pbx.Config{URL: "http://127.0.0.1:1", Username: "1001", Secret: "x"}); !errors.Is(err, pbx.ErrPBXURLNotHTTPS) {
		t.Errorf("http URL: err = %v, want ErrPBXURLNotHTTPS", err)
	}
	if code, ok := pbx.CodeOf(func() error {
		_, err := pbx.Open(ctx, pbx.Config{URL: "https//missing-colon", Username: "1001", Secret: "x"})
		return err
	}()); !ok || code.Code != -2 {
		t.Errorf("malformed URL: code = %v, want -2", code)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := pbx.Config{URL: "https://127.0.0.1:1", Username: "1001", Secret: "x"}
	tests := []struct {
		name   string
		modify func(*pbx.Config)
		names  []string // fields the error must name
	}{
		{"unknown user agent", func(c *pbx.Config) { c.UserAgent = "Firefox" }, nil},
		{"negative timeout", func(c *pbx.Config) { c.RequestTimeout = -1 }, nil},
		{"negative buffer", func(c *pbx.Config) { c.EventBuffer = -1 }, nil},
		{"missing CA file", func(c *pbx.Config) { c.CAFile = filepath.Join(dir, "nope.pem") }, nil},
		{"CA file without PEM", func(c *pbx.Config) { c.CAFile = notPEM }, nil},
		{"insecure with a CA file", func(c *pbx.Config) { c.InsecureSkipVerify, c.CAFile = true, notPEM }, []string{"InsecureSkipVerify", "CAFile"}},
		{"insecure with root CAs", func(c *pbx.Config) { c.InsecureSkipVerify, c.RootCAs = true, x509.NewCertPool() }, []string{"InsecureSkipVerify", "RootCAs"}},
	}
	for _, tt := range tests {
		cfg := base
		tt.modify(&cfg)
		_, err := pbx.NewClient(cfg)
		if !errors.Is(err, pbx.ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", tt.name, err)
			continue
		}
		for _, name := range tt.names {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("%s: err %q does not name %s", tt.name, err, name)
			}
		}
		if _, err := pbx.NewHTTPClient(cfg, 0); tt.names != nil && !errors.Is(err, pbx.ErrInvalidConfig) {
			t.Errorf("%s: NewHTTPClient err = %v, want ErrInvalidConfig", tt.name, err)
		}
	}
	for _, cfg := range []pbx.Config{{URL: base.URL, Secret: "x"}, {URL: base.URL, Username: "1001"}} {
		if _, err := pbx.Open(context.Background(), cfg); !errors.Is(err, pbx.ErrInvalidConfig) {
			t.Errorf("Open without username or secret: err = %v, want ErrInvalidConfig", err)
		}
	}
}

// TestDefaultMaxFrameBytesFitsNATS: an event built from a frame under the
// default limit must fit the NATS server's default max_payload (1 MiB)
// with room for the CloudEvents envelope.
func TestDefaultMaxFrameBytesFitsNATS(t *testing.T) {
	const natsDefaultMaxPayload = 1 << 20
	const envelopeRoom = 16 << 10
	if pbx.DefaultMaxFrameBytes+envelopeRoom > natsDefaultMaxPayload {
		t.Fatalf("DefaultMaxFrameBytes %d leaves less than %d bytes of a %d-byte NATS message", pbx.DefaultMaxFrameBytes, envelopeRoom, natsDefaultMaxPayload)
	}
}
