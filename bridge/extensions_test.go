package bridge

import "testing"

func TestMatchExtension(t *testing.T) {
	cases := []struct {
		number           string
		include, exclude []string
		served           bool
		rule             string
	}{
		{"1001", nil, nil, true, "include: (all)"},
		{"1001", []string{"1*"}, nil, true, "include: 1*"},
		{"2001", []string{"1*"}, nil, false, "include: (no pattern matches)"},
		{"1999", []string{"1*"}, []string{"19??"}, false, "exclude: 19??"},
		{"1001", []string{"2*", "10[0-4]?"}, nil, true, "include: 10[0-4]?"},
		{"1051", []string{"10[0-4]?"}, nil, false, "include: (no pattern matches)"},
		{"1001", nil, []string{"1001"}, false, "exclude: 1001"},
	}
	for _, tc := range cases {
		served, rule := MatchExtension(tc.number, DiscoveryConfig{Include: tc.include, Exclude: tc.exclude})
		if served != tc.served || rule != tc.rule {
			t.Errorf("MatchExtension(%s, include %v, exclude %v) = %v %q, want %v %q", tc.number, tc.include, tc.exclude, served, rule, tc.served, tc.rule)
		}
	}
}
