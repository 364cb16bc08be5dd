package pbx

import (
	"crypto/x509"
	"testing"
)

// TestSharedTLSConfigs: the clients of one Shared config share their TLS
// configurations (built once, not per client and per dial); one whose TLS
// fields differ gets its own, built from its fields.
func TestSharedTLSConfigs(t *testing.T) {
	pool := x509.NewCertPool()
	shared, err := Config{URL: "https://pbx.example.com:8088", Username: "1001", Secret: "s", RootCAs: pool}.Shared()
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewClient(shared)
	if err != nil {
		t.Fatal(err)
	}
	other := shared
	other.Username = "1002"
	b, err := NewClient(other)
	if err != nil {
		t.Fatal(err)
	}
	if a.tls != b.tls {
		t.Error("two clients of one Shared config built two socket TLS configurations")
	}
	if a.tls.ServerName != "pbx.example.com" || len(a.tls.NextProtos) != 1 || a.tls.NextProtos[0] != "http/1.1" || a.tls.RootCAs != pool || a.tls.ClientSessionCache != shared.SessionCache {
		t.Errorf("socket TLS = server name %q, protos %v, own roots %v, shared session cache %v",
			a.tls.ServerName, a.tls.NextProtos, a.tls.RootCAs == pool, a.tls.ClientSessionCache == shared.SessionCache)
	}
	differs := shared
	differs.RootCAs = x509.NewCertPool()
	c, err := NewClient(differs)
	if err != nil {
		t.Fatal(err)
	}
	if c.tls == a.tls || c.tls.RootCAs != differs.RootCAs {
		t.Error("a client with other roots got the shared TLS configuration")
	}
	// Without Shared each client builds its own.
	d, _ := NewClient(Config{URL: "https://pbx.example.com:8088", Username: "1001", Secret: "s", RootCAs: pool})
	e, _ := NewClient(Config{URL: "https://pbx.example.com:8088", Username: "1002", Secret: "s", RootCAs: pool})
	if d.tls == e.tls {
		t.Error("clients of unshared configs share a TLS configuration")
	}
}
