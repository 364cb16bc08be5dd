package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"

	"github.com/pbx-bridge/pbx-bridge/bridge"
)

// What the bridge child reads from its parent's files, and its counters
// (figure 7's frames dropped).

// childCredentials reads the files the parent wrote: the extensions'
// secrets ({extension: secret}) and, if openAPIFile is not empty, the
// OpenAPI credentials ({"access_id", "access_key"}).
func childCredentials(secretsFile, openAPIFile string) ([]bridge.Credential, bridge.OpenAPIConfig, error) {
	var secrets map[string]string
	var oa struct {
		ID  string `json:"access_id"`
		Key string `json:"access_key"`
	}
	for _, f := range []struct {
		path string
		v    any
	}{{secretsFile, &secrets}, {openAPIFile, &oa}} {
		if f.path == "" {
			continue
		}
		raw, err := os.ReadFile(f.path)
		if err != nil {
			return nil, bridge.OpenAPIConfig{}, err
		}
		if err := json.Unmarshal(raw, f.v); err != nil {
			return nil, bridge.OpenAPIConfig{}, fmt.Errorf("%s: %w", f.path, err)
		}
	}
	var creds []bridge.Credential
	for n, s := range secrets {
		creds = append(creds, bridge.Credential{Username: n, Secret: s})
	}
	return creds, bridge.OpenAPIConfig{AccessID: oa.ID, AccessKey: oa.Key}, nil
}

// bridgeMetrics scrapes the bridge's /metrics in the process and returns
// its pbx_bridge_* samples by series.
func bridgeMetrics(b *bridge.Bridge) (map[string]float64, error) {
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: HTTP %d", rec.Code)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if !strings.HasPrefix(line, "pbx_bridge_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); i > 0 && err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}
