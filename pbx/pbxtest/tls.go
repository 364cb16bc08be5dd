package pbxtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

// certificates is the simulator's private PKI: a CA that tests trust, and a
// leaf it signed that the listener presents. A CA rather than a self-signed
// leaf, so that clients are configured the way they are in production (a CA
// file or pool), not by pinning one certificate.
type certificates struct {
	caPEM []byte
	ca    *x509.Certificate
	leaf  tls.Certificate
}

// newCertificates generates a fresh ECDSA P-256 CA and a server certificate
// for the loopback names plus hosts (IP literals, optionally bracketed, or
// DNS names).
func newCertificates(hosts []string) (*certificates, error) {
	now := time.Now()
	template := func(name string) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: serialNumber(),
			Subject:      pkix.Name{Organization: []string{"pbxtest"}, CommonName: name},
			NotBefore:    now.Add(-time.Hour), // tolerate clock skew between test processes
			NotAfter:     now.AddDate(1, 0, 0),
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTemplate := template("pbxtest CA")
	caTemplate.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	caTemplate.BasicConstraintsValid, caTemplate.IsCA, caTemplate.MaxPathLenZero = true, true, true
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTemplate := template("pbxtest PBX")
	leafTemplate.KeyUsage = x509.KeyUsageDigitalSignature
	leafTemplate.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	seen := map[string]bool{}
	for _, h := range append([]string{"127.0.0.1", "::1", "localhost"}, hosts...) {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			leafTemplate.IPAddresses = append(leafTemplate.IPAddresses, ip)
		} else {
			leafTemplate.DNSNames = append(leafTemplate.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTemplate, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create server certificate: %w", err)
	}
	return &certificates{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		ca:    ca,
		leaf:  tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey},
	}, nil
}

// serverConfig offers HTTP/1.1 only: WebSocket upgrades need it, and a PBX's
// web server is what the SDK talks to over HTTP/1.1 as well.
func (c *certificates) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.leaf},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}
}

func serialNumber() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("pbxtest: crypto/rand failed: " + err.Error())
	}
	return n
}

// CertPEM returns the PEM encoding of the CA certificate that signed the
// server's certificate: what a client must trust.
func (s *Server) CertPEM() []byte {
	return append([]byte(nil), s.certs.caPEM...)
}

// CertPool returns a new pool holding only the server's CA, ready for
// tls.Config.RootCAs.
func (s *Server) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.certs.ca)
	return pool
}

// WriteCAFile writes the CA certificate in PEM to path, for code under test
// that is configured with a CA file.
func (s *Server) WriteCAFile(path string) error {
	return os.WriteFile(path, s.CertPEM(), 0o644)
}
