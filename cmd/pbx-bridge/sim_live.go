package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// liveCallsRequest is a steady load of live calls on the OpenAPI event
// socket (pbxtest.CallLoad): Rate calls a second for DurationMS, each
// ringing RingMS and talking TalkMS, among the extensions Exts (a list in
// the --extensions syntax).
type liveCallsRequest struct {
	Exts       string  `json:"exts"`
	Rate       float64 `json:"rate"`
	DurationMS int     `json:"duration_ms"`
	RingMS     int     `json:"ring_ms"`
	TalkMS     int     `json:"talk_ms"`
}

// liveCalls makes the calls and answers once the last has ended, with
// every call's extensions and the send time of each of its 30011 frames.
func (c *simControl) liveCalls(w http.ResponseWriter, r *http.Request) {
	var req liveCallsRequest
	err := decodeBody(r, &req)
	var exts []string
	if err == nil {
		exts, err = extensionList(req.Exts)
	}
	if err == nil && (req.Rate <= 0 || req.DurationMS < 1 || req.RingMS < 0 || req.TalkMS < 0 ||
		req.Rate*float64(req.DurationMS)/1000 > maxPush || req.RingMS+req.TalkMS > 600_000) {
		err = fmt.Errorf("rate must be positive, duration_ms at least 1, rate × duration at most %d calls, ring_ms and talk_ms 0..600000 together", maxPush)
	}
	if err != nil {
		reply(w, nil, err)
		return
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	res, err := c.sim.RunCallLoad(r.Context(), pbxtest.CallLoad{Exts: exts, Rate: req.Rate,
		Duration: ms(req.DurationMS), Ring: ms(req.RingMS), Talk: ms(req.TalkMS)})
	reply(w, res, err)
}

// eventSockets answers how many OpenAPI event sockets are open, and how
// many topic_lists they sent in all: the bench waits for the bridge's.
func (c *simControl) eventSockets(w http.ResponseWriter, _ *http.Request) {
	reply(w, map[string]int{"open": c.sim.EventSockets(), "subscribed": len(c.sim.EventTopicLists())}, nil)
}
