package pbx

import (
	"net/http"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/httpapi"
)

// NewHTTPClient returns an HTTP client for the PBX of cfg, with cfg's TLS
// settings, that never follows a redirect. Sessions of many extensions of
// one PBX can share it (Config.HTTPClient) and with it a small pool of
// connections, rather than one idle TLS connection per extension.
// maxIdle bounds the idle connections kept to the PBX.
func NewHTTPClient(cfg Config, maxIdle int) (*http.Client, error) {
	if _, err := ParseOrigin(cfg.URL); err != nil {
		return nil, err
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	hc, tr := httpapi.NewClient(tc)
	if maxIdle > 0 {
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = maxIdle, maxIdle
	}
	return hc, nil
}
