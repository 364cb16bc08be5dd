package main

import (
	"slices"
	"testing"
	"time"
)

func TestExtensionListRanges(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "1001,1002", want: []string{"1001", "1002"}},
		{in: "100-103, 2000", want: []string{"100", "101", "102", "103", "2000"}},
		{in: "7-7", want: []string{"7"}},
		{in: "ext-1", want: []string{"ext-1"}}, // not numbers: a token with a dash
		{in: "9-3", bad: true},
		{in: "1-200000", bad: true},
		{in: "10.1", bad: true},
	} {
		got, err := extensionList(tc.in)
		if tc.bad != (err != nil) || !tc.bad && !slices.Equal(got, tc.want) {
			t.Errorf("extensionList(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestBenchNumber(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.123: "0.12", 12.34: "12.3", 123.4: "123", 1234.5: "1,235", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := number(v); got != want {
			t.Errorf("number(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestBenchOptionsChecked(t *testing.T) {
	ok := benchOptions{small: 10, large: 20, work: 5, push: 10, latencyFor: 1, queryFor: 1, gap: 10, calls: 1, relogins: 1, loginRate: 1, concurrency: 1,
		live: liveOptions{rate: 10, duration: time.Second}}
	if err := ok.check(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func(*benchOptions){
		"small overlaps the work extensions": func(o *benchOptions) { o.small = workFrom - smallFrom + 1 },
		"more relogins than extensions":      func(o *benchOptions) { o.relogins = 11 },
		"no push":                            func(o *benchOptions) { o.push = 0 },
		"no concurrency":                     func(o *benchOptions) { o.concurrency = 0 },
		"no live call rate":                  func(o *benchOptions) { o.live.rate = 0 },
		"more live extensions than tracked":  func(o *benchOptions) { o.live.exts = maxLiveExtensions + 1 },
		"live calls without an end":          func(o *benchOptions) { o.live.talk = -1 },
	} {
		o := ok
		bad(&o)
		if o.check() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
