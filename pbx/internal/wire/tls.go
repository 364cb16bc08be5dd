package wire

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
)

// TLSOptions are the TLS fields of a client's configuration.
type TLSOptions struct {
	CAFile             string
	RootCAs            *x509.CertPool
	InsecureSkipVerify bool
	// HTTPClient, when its transport has a TLS configuration, is where the
	// settings come from if none of the above says otherwise.
	HTTPClient   *http.Client
	SessionCache tls.ClientSessionCache
}

// TLSConfig builds the TLS settings of both the API client and the
// sockets. Its errors say which fields are wrong; the caller wraps them
// with its own invalid-configuration error.
func TLSConfig(o TLSOptions) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify}
	switch {
	case o.CAFile != "" && o.RootCAs != nil:
		return nil, errors.New("set CAFile or RootCAs, not both")
	case o.InsecureSkipVerify && o.CAFile != "":
		// One of the two is a mistake: either the CA would be ignored or
		// verification was meant to be on.
		return nil, errors.New("InsecureSkipVerify and CAFile are both set: verification is either off or against CAFile, not both")
	case o.InsecureSkipVerify && o.RootCAs != nil:
		return nil, errors.New("InsecureSkipVerify and RootCAs are both set: verification is either off or against RootCAs, not both")
	case o.CAFile != "":
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CAFile %s holds no PEM certificate", o.CAFile)
		}
		tc.RootCAs = pool
	case o.RootCAs != nil:
		tc.RootCAs = o.RootCAs
	case !o.InsecureSkipVerify && o.HTTPClient != nil:
		if tr, ok := o.HTTPClient.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
			tc = tr.TLSClientConfig.Clone()
		}
	}
	if o.SessionCache != nil {
		tc.ClientSessionCache = o.SessionCache
	}
	return tc, nil
}

// SocketTLS returns a socket's TLS configuration, ready to dial with
// (DialTLS), made from the API's: the PBX's name, and HTTP/1.1 only (a
// configuration taken from an HTTP transport may offer h2; the upgrade is
// HTTP/1.1).
func SocketTLS(api *tls.Config, origin *url.URL) *tls.Config {
	socket := api.Clone()
	if socket.ServerName == "" {
		socket.ServerName = origin.Hostname()
	}
	socket.NextProtos = []string{"http/1.1"}
	return socket
}
