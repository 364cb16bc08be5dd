package main

import (
	"testing"
)

// TestMetricsPerExtensionKey: metrics.per_extension is off by default,
// turns the per-extension series on, and needs metrics.listen.
func TestMetricsPerExtensionKey(t *testing.T) {
	t.Setenv("TEST_SECRET_1001", "x")
	fc, err := parseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if fc.bridgeConfig(nil).Metrics.PerExtension {
		t.Error("metrics.per_extension is on by default")
	}
	fc, err = parseConfig([]byte(minimal + "metrics: {listen: \"127.0.0.1:9090\", per_extension: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !fc.bridgeConfig(nil).Metrics.PerExtension {
		t.Error("metrics.per_extension: true did not reach the bridge")
	}
	checkConfigErrors(t, []configErrorCase{
		{"per extension without listen", minimal + "metrics: {per_extension: true}\n", []string{"metrics.per_extension", "metrics.listen"}},
		{"per extension not a bool", minimal + "metrics: {listen: \"127.0.0.1:9090\", per_extension: sometimes}\n", []string{"per_extension", "sometimes"}},
	})
}
