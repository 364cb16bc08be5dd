package httpapi

import (
	"crypto/tls"
	"net/http"
)

// NewClient returns an HTTP client with its own transport, dialling with
// tc, that never follows a redirect.
func NewClient(tc *tls.Config) (*http.Client, *http.Transport) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc.Clone()
	return &http.Client{
		Transport: tr,
		// A PBX API does not redirect; following one would send the token
		// on to wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, tr
}
