package pbx_test

import (
	"slices"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
)

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		version, min string
		want         bool
	}{
		{"37.12.0.10", "37.12.0.10", true},
		{"30.12.0.10", "37.12.0.10", true}, // the first field is dropped
		{"37.12.0.9", "37.12.0.10", false},
		{"37.12.1.0", "37.12.0.10", true},
		{"37.13.0.0", "37.12.0.10", true},
		{"37.11.99.99", "37.12.0.10", false},
		{"37.9.0.10", "37.12.0.10", false}, // numeric, not lexical
		{"83.100.0.1", "37.12.0.10", true},
		{"37.12.0.10.1", "37.12.0.10", true},
		{"37.12", "37.12.0.10", false}, // missing fields are 0
		{"37.12.0.10b", "37.12.0.10", true},
		{"37.x.0.10", "37.12.0.10", false},
		{"", "37.12.0.10", false},
		{"37", "37.12.0.10", false},
	}
	for _, tt := range tests {
		if got := pbx.VersionAtLeast(tt.version, tt.min); got != tt.want {
			t.Errorf("VersionAtLeast(%q, %q) = %v, want %v", tt.version, tt.min, got, tt.want)
		}
	}
}

func TestTopics(t *testing.T) {
	base := []int{10000, 20007, 20008, 20010, 20015, 20047, 20048, 20049, 20053, 20065, 20066, 20082, 20104}
	tests := []struct {
		name, version, ua string
		want              []int
	}{
		// The observed frame of a WebClient on new firmware.
		{"new firmware WebClient", "37.12.0.10", pbx.UserAgentWebClient,
			[]int{10000, 20007, 20008, 20010, 20015, 20047, 20048, 20049, 20053, 20065, 20066, 20082, 20104, 20153, 20154}},
		{"old firmware WebClient", "37.11.0.22", pbx.UserAgentWebClient, base},
		{"old firmware WebPC", "37.11.0.22", pbx.UserAgentWebPC,
			[]int{10000, 20007, 20008, 20010, 20013, 20015, 20047, 20048, 20049, 20053, 20065, 20066, 20082, 20104}},
		{"new firmware WebPC", "30.12.0.10", pbx.UserAgentWebPC,
			[]int{10000, 20007, 20008, 20010, 20013, 20015, 20047, 20048, 20049, 20053, 20065, 20066, 20082, 20104, 20153, 20154}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pbx.Topics(tt.version, tt.ua)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Topics = %v, want %v", got, tt.want)
			}
			got[0] = -1
			if again := pbx.Topics(tt.version, tt.ua); again[0] != 10000 {
				t.Fatal("Topics returns shared state")
			}
		})
	}
}
