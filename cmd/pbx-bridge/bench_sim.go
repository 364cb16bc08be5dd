package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// simChild is the bench's handle on `pbx-bridge sim` running in a process
// of its own, driven through its control API.
type simChild struct {
	cmd    *exec.Cmd
	url    string // the PBX's
	caFile string
	// accessID and accessKey are the OpenAPI's credentials, for the
	// bridge's event socket.
	accessID, accessKey string
	control             string // the control API's
	http                *http.Client
}

// startSimChild starts the simulator with the extensions exts (in the
// --extensions syntax) and waits until its control API answers.
func startSimChild(ctx context.Context, exts, caFile string) (*simChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "sim", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
		"--extensions", exts, "--ca-file", caFile)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &simChild{cmd: cmd, caFile: caFile, http: &http.Client{Timeout: 10 * time.Minute}}
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			switch {
			case strings.HasPrefix(line, "url:") && s.url == "":
				s.url = strings.TrimSpace(strings.TrimPrefix(line, "url:"))
			case strings.HasPrefix(line, "access_id:") && s.accessID == "":
				s.accessID = strings.TrimSpace(strings.TrimPrefix(line, "access_id:"))
			case strings.HasPrefix(line, "access_key:") && s.accessKey == "":
				s.accessKey = strings.TrimSpace(strings.TrimPrefix(line, "access_key:"))
			case strings.HasPrefix(line, "control API:"):
				s.control = strings.TrimSpace(strings.TrimPrefix(line, "control API:"))
				found <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		found <- fmt.Errorf("pbx-bridge sim ended its output without a control API (url %q)", s.url)
	}()
	select {
	case err = <-found:
	case <-time.After(2 * time.Minute):
		err = fmt.Errorf("pbx-bridge sim did not start within 2m")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *simChild) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// do calls the control API: POST with body when body is not nil, else GET.
func (s *simChild) do(ctx context.Context, path string, body, out any) error {
	method, rd := http.MethodGet, io.Reader(nil)
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		method, rd = http.MethodPost, bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.control+path, rd)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("sim control %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sim control %s: HTTP %d: %s", path, resp.StatusCode, data)
	}
	return json.Unmarshal(data, out)
}

func (s *simChild) requests(ctx context.Context) (map[string]int, error) {
	var m map[string]int
	err := s.do(ctx, "/requests", nil, &m)
	return m, err
}

func (s *simChild) secrets(ctx context.Context) (map[string]string, error) {
	var m map[string]string
	err := s.do(ctx, "/secrets", nil, &m)
	return m, err
}

func (s *simChild) calls(ctx context.Context, req callsRequest) (first, last int, err error) {
	var out struct{ First, Last int }
	err = s.do(ctx, "/calls", req, &out)
	return out.First, out.Last, err
}

func (s *simChild) push(ctx context.Context, req pushRequest) (pushResult, error) {
	var out pushResult
	err := s.do(ctx, "/push", req, &out)
	return out, err
}

// liveCalls makes a load of live calls and returns once the last ended.
func (s *simChild) liveCalls(ctx context.Context, req liveCallsRequest) (pbxtest.CallLoadResult, error) {
	var out pbxtest.CallLoadResult
	err := s.do(ctx, "/live-calls", req, &out)
	return out, err
}

// eventSockets returns the open OpenAPI event sockets and the topic_lists
// they sent.
func (s *simChild) eventSockets(ctx context.Context) (open, subscribed int, err error) {
	var out struct{ Open, Subscribed int }
	err = s.do(ctx, "/event-sockets", nil, &out)
	return out.Open, out.Subscribed, err
}

func (s *simChild) relogin(ctx context.Context, ext string) error {
	var out map[string]bool
	return s.do(ctx, "/relogin", map[string]string{"ext": ext}, &out)
}

// requestDelta is what the PBX served between two readings of its counters.
type requestDelta map[string]int

func deltaOf(before, after map[string]int) requestDelta {
	d := requestDelta{}
	for p, n := range after {
		if n != before[p] {
			d[p] = n - before[p]
		}
	}
	return d
}

// api returns the requests of an endpoint (the path after /api/v1.0/).
func (d requestDelta) api(ep string) int { return d["/api/v1.0/"+ep] }

// loginRequests are the API requests that count towards a login: the init
// sequence and catch-up (logout and the socket upgrade are counted apart).
func (d requestDelta) loginRequests() int {
	n := 0
	for _, ep := range []string{"pbx/getproduct", "login", "extension/getpersonalglobal", "licenseservice/get",
		"extension/getpersonal", "extension/getregisterinfo", "cdr/searchpersonal"} {
		n += d.api(ep)
	}
	return n
}

// total returns every request, subscribe upgrades included.
func (d requestDelta) total() int {
	n := 0
	for _, v := range d {
		n += v
	}
	return n
}
