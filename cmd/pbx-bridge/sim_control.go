package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// simControl is the simulator's control API (pbx-bridge sim --control), so
// that another process (pbx-bridge bench) can drive a simulator running in
// a process of its own: make calls, push notifications, read the request
// counters, make live calls on the event socket. Plain HTTP and JSON, on a
// loopback address only: it takes no credential and hands out the
// extensions' secrets.
type simControl struct {
	sim     *pbxtest.Server
	numbers []string
}

// maxPush bounds the frames one push request sends.
const maxPush = 10_000_000

// serveSimControl serves the control API on listen (a loopback address)
// until ctx ends, and returns its URL.
func serveSimControl(ctx context.Context, sim *pbxtest.Server, numbers []string, listen string) (string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--control: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("--control %s: the control API takes no credential and must listen on a loopback address", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "", fmt.Errorf("--control: %w", err)
	}
	c := &simControl{sim: sim, numbers: numbers}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /requests", c.requests)
	mux.HandleFunc("GET /secrets", c.secrets)
	mux.HandleFunc("POST /calls", c.calls)
	mux.HandleFunc("POST /push", c.push)
	mux.HandleFunc("POST /relogin", c.relogin)
	mux.HandleFunc("POST /live-calls", c.liveCalls)
	mux.HandleFunc("GET /event-sockets", c.eventSockets)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = hs.Close() })
	return "http://" + ln.Addr().String(), nil
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		v = map[string]string{"error": err.Error()}
	}
	_ = json.NewEncoder(w).Encode(v)
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// requests answers the PBX's request counters by URL path.
func (c *simControl) requests(w http.ResponseWriter, _ *http.Request) {
	reply(w, c.sim.RequestCounts(), nil)
}

// secrets answers every extension's login signature.
func (c *simControl) secrets(w http.ResponseWriter, _ *http.Request) {
	out := make(map[string]string, len(c.numbers))
	for _, n := range c.numbers {
		if e, ok := c.sim.Extension(n); ok {
			out[n] = e.Secret
		}
	}
	reply(w, out, nil)
}

// callsRequest makes N calls of one extension: with NotifyLast, all but the
// last are silent (a gap the bridge only learns of by the last one's
// notification); every MissedEvery-th is a missed call. With DuringQueryMS,
// every searchpersonal is answered that many milliseconds late while the
// calls are made, and each call after the first waits until a query has
// arrived after the previous one: its notification comes while the
// catch-up of the previous call is under way.
type callsRequest struct {
	Ext           string `json:"ext"`
	N             int    `json:"n"`
	NotifyLast    bool   `json:"notify_last"`
	MissedEvery   int    `json:"missed_every"`
	DuringQueryMS int    `json:"during_query_ms,omitempty"`
}

const searchPath = "/api/v1.0/cdr/searchpersonal"

// awaitQuery waits until the PBX has received more than n searchpersonal
// queries, for at most 5 s.
func (c *simControl) awaitQuery(ctx context.Context, n int) error {
	deadline := time.Now().Add(5 * time.Second)
	for c.sim.Requests(searchPath) <= n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("no searchpersonal query came after the call within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (c *simControl) calls(w http.ResponseWriter, r *http.Request) {
	var req callsRequest
	if err := decodeBody(r, &req); err != nil || req.N < 1 || req.N > maxPush || req.DuringQueryMS < 0 || req.DuringQueryMS > 10_000 {
		reply(w, nil, fmt.Errorf("want {ext, n (1..%d), notify_last, missed_every, during_query_ms (0..10000)}: %v", maxPush, err))
		return
	}
	if req.DuringQueryMS > 0 {
		c.sim.SlowEndpoint(searchPath, time.Duration(req.DuringQueryMS)*time.Millisecond)
		defer c.sim.SlowEndpoint(searchPath, 0)
	}
	var first, last int
	queries := c.sim.Requests(searchPath)
	for i := 0; i < req.N; i++ {
		if req.DuringQueryMS > 0 && i > 0 {
			if err := c.awaitQuery(r.Context(), queries); err != nil {
				reply(w, nil, err)
				return
			}
			queries = c.sim.Requests(searchPath)
		}
		call := pbxtest.Call{Kind: pbxtest.Incoming, TalkDuration: 1 + i%120, Peer: fmt.Sprintf("5550%04d", i%10000)}
		if req.MissedEvery > 0 && i%req.MissedEvery == 0 {
			call.Kind, call.TalkDuration = pbxtest.Missed, 0
		}
		call.Silent = req.NotifyLast && i < req.N-1
		rec, err := c.sim.Call(req.Ext, call)
		if err != nil {
			reply(w, nil, err)
			return
		}
		if i == 0 {
			first = rec.ID
		}
		last = rec.ID
	}
	reply(w, map[string]int{"first": first, "last": last}, nil)
}

// pushRequest sends Count notifications of Type round-robin to the
// extensions Exts (a list in the --extensions syntax), Rate a second (0: as
// fast as the simulator can, from one goroutine per CPU). Each msg carries
// sent_ns, the Unix time in nanoseconds it was sent at, so that whoever
// receives the event it becomes can tell the latency.
type pushRequest struct {
	Exts  string  `json:"exts"`
	Type  int     `json:"type"`
	Count int     `json:"count"`
	Rate  float64 `json:"rate"`
}

// pushResult says how many frames went out and how long that took.
type pushResult struct {
	Sent    int     `json:"sent"`
	Seconds float64 `json:"seconds"`
}

func (c *simControl) push(w http.ResponseWriter, r *http.Request) {
	var req pushRequest
	err := decodeBody(r, &req)
	var exts []string
	if err == nil {
		exts, err = extensionList(req.Exts)
	}
	if err == nil && (req.Count < 1 || req.Count > maxPush || req.Rate < 0 || req.Type <= 0) {
		err = fmt.Errorf("count must be 1..%d, rate not negative, type a notification type", maxPush)
	}
	if err != nil {
		reply(w, nil, err)
		return
	}
	start := time.Now()
	if req.Rate > 0 {
		c.pushPaced(r.Context(), exts, req)
	} else {
		c.pushFast(exts, req)
	}
	reply(w, pushResult{Sent: req.Count, Seconds: time.Since(start).Seconds()}, nil)
}

// notice is a 20048 (recording status) msg as a PBX sends it, with sent_ns.
func notice(i int) map[string]any {
	return map[string]any{
		"record_status":        "start",
		"call_feature":         "record",
		"caller_origin_number": "5551234",
		"callee_origin_number": "1001",
		"caller_sip_callid":    fmt.Sprintf("%08x-bench@127.0.0.1", i),
		"callee_sip_callid":    fmt.Sprintf("%08x-bench@127.0.0.1", i+1),
		"sent_ns":              time.Now().UnixNano(),
	}
}

func (c *simControl) pushFast(exts []string, req pushRequest) {
	workers := min(runtime.GOMAXPROCS(0), len(exts))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Worker w sends frames w, w+workers, ... to the extensions in
			// turn.
			for i := w; i < req.Count; i += workers {
				c.sim.Notify(exts[i%len(exts)], req.Type, notice(i))
			}
		}()
	}
	wg.Wait()
}

func (c *simControl) pushPaced(ctx context.Context, exts []string, req pushRequest) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	start := time.Now()
	for sent := 0; sent < req.Count; {
		due := min(req.Count, int(req.Rate*time.Since(start).Seconds())+1)
		for ; sent < due; sent++ {
			c.sim.Notify(exts[sent%len(exts)], req.Type, notice(sent))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// relogin makes the PBX ask ext to log in again (20010).
func (c *simControl) relogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Ext string `json:"ext"`
	}
	if err := decodeBody(r, &req); err != nil || req.Ext == "" {
		reply(w, nil, errors.Join(errors.New("want {ext}"), err))
		return
	}
	c.sim.ForceReLogin(req.Ext)
	reply(w, map[string]bool{"ok": true}, nil)
}
