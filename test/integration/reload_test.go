package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// openAPIProcess is a pbx-bridge process whose configuration file the test
// edits, against a simulated PBX it reaches with OpenAPI credentials only.
type openAPIProcess struct {
	*process
	path string
	sim  *pbxtest.Server
	nc   *nats.Conn
	rec  *recorder
	base string // the configuration up to its discovery and extensions
}

// startOpenAPIProcess runs the binary on NATS and a simulator holding
// exts, with the configuration base + rest; the AccessKey comes from the
// environment, as an operator would pass it.
func startOpenAPIProcess(t *testing.T, rest string, exts ...string) *openAPIProcess {
	t.Helper()
	ns := startNATS(t, t.TempDir(), -1)
	sim, _ := startPBX(t, exts...)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := sim.WriteCAFile(caFile); err != nil {
		t.Fatal(err)
	}
	id, key := sim.OpenAPICredentials()
	op := &openAPIProcess{
		path: filepath.Join(t.TempDir(), "pbx-bridge.yaml"),
		sim:  sim,
		nc:   connect(t, ns.ClientURL()),
		base: fmt.Sprintf(`nats:
  url: %s
pbx:
  url: %s
  ca_file: %s
  request_timeout: 5s
  heartbeat: {ping_after: 500ms, pong_timeout: 500ms, keepalive_every: 600ms}
  reconnect: {min: 20ms, max: 300ms}
  login_retry: {min: 50ms, max: 500ms}
  rate_limit: {requests_per_second: 500, max_concurrent: 8}
  openapi:
    access_id: %q
    access_key: ${TEST_PBX_OPENAPI_KEY}
log:
  level: debug
  format: json
shutdown_timeout: 5s
`, ns.ClientURL(), sim.URL(), caFile, id),
	}
	op.rec = record(t, op.nc, "pbx.>")
	op.write(t, op.base+rest)
	p := &process{t: t, logs: &syncBuffer{}, done: make(chan struct{}), info: map[string]string{}}
	p.cmd = exec.Command(binary(t), "run", "--config", op.path)
	p.cmd.Env = append(os.Environ(), "TEST_PBX_OPENAPI_KEY="+key)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.readLogs(stderr)
	t.Cleanup(p.kill)
	op.process = p
	return op
}

func (op *openAPIProcess) write(t *testing.T, config string) {
	t.Helper()
	if err := os.WriteFile(op.path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reload writes the configuration and sends SIGHUP.
func (op *openAPIProcess) reload(t *testing.T, config string) {
	t.Helper()
	op.write(t, config)
	if err := op.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// logLines returns the JSON log lines whose msg is msg.
func (op *openAPIProcess) logLines(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(op.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// awaitLog waits for the n-th log line with msg and returns it.
func (op *openAPIProcess) awaitLog(t *testing.T, msg string, n int) map[string]any {
	t.Helper()
	var lines []map[string]any
	waitFor(t, fmt.Sprintf("log line %d of %q", n, msg), 20*time.Second, func() bool {
		lines = op.logLines(msg)
		return len(lines) >= n
	})
	return lines[n-1]
}

// infoCode requests ext's info and returns the service error code ("" for
// an answer).
func (op *openAPIProcess) infoCode(t *testing.T, ext string) string {
	t.Helper()
	m, err := op.nc.Request("pbx."+ext+".info", nil, 5*time.Second)
	if err != nil {
		t.Fatalf("pbx.%s.info: %v", ext, err)
	}
	return m.Header.Get("Nats-Service-Error-Code")
}

// checkNoCredentials fails if the binary logged a credential the simulator
// issued: the AccessKey, an OpenAPI or Linkus token, a signature.
func (op *openAPIProcess) checkNoCredentials(t *testing.T) {
	t.Helper()
	logs := op.logs.String()
	var events strings.Builder
	for _, e := range op.rec.all() {
		events.Write(e.Raw)
	}
	for _, c := range op.sim.IssuedCredentials() {
		if c != "" && strings.Contains(logs, c) {
			t.Errorf("a credential of the simulator (%d bytes) is in the log", len(c))
		}
		if c != "" && strings.Contains(events.String(), c) {
			t.Errorf("a credential of the simulator (%d bytes) is in an event", len(c))
		}
	}
	for _, m := range regexp.MustCompile(`access_token=([^&\s"]*)`).FindAllStringSubmatch(logs, -1) {
		if m[1] != "REDACTED" {
			t.Errorf("an unredacted access token in the log: %q", m[0])
		}
	}
}

// TestProcessServesAWholePBX: a configuration with OpenAPI credentials and
// discovery.enabled only, no extension listed, brings every extension of
// the PBX online, on one access token that the shutdown revokes.
func TestProcessServesAWholePBX(t *testing.T) {
	exts := []string{"1001", "1002", "2001", "3001"}
	op := startOpenAPIProcess(t, "discovery:\n  enabled: true\n", exts...)
	for _, e := range exts {
		op.rec.await("pbx."+e+".session.online", 1, 30*time.Second)
	}
	if _, err := op.sim.Call("2001", pbxtest.Call{Kind: pbxtest.Missed}); err != nil {
		t.Fatal(err)
	}
	op.rec.await("pbx.2001.call.missed", 1, 10*time.Second)
	if err := op.terminate(20 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, op.logs.String())
	}
	for _, e := range exts {
		if n := op.sim.SignsMinted(e); n != 1 {
			t.Errorf("%s: %d signatures minted, want 1", e, n)
		}
	}
	if n := op.sim.MaxLiveOpenAPITokens(); n > 2 {
		t.Errorf("%d access tokens alive at once, want at most 2", n)
	}
	if n := op.sim.LiveOpenAPITokens(); n != 0 {
		t.Errorf("%d access tokens alive after the shutdown: it must revoke its token", n)
	}
	op.checkNoCredentials(t)
}

// TestSIGHUPAppliesExtensions: SIGHUP after an edit of the file adds a
// configured extension and removes another, leaving the discovered ones
// undisturbed, and names the other changed keys as needing a restart; a
// bad file on SIGHUP changes nothing.
func TestSIGHUPAppliesExtensions(t *testing.T) {
	discovery := "discovery:\n  enabled: true\n  include: [\"1*\"]\n"
	op := startOpenAPIProcess(t, discovery+"extensions:\n  - username: \"2001\"\n",
		"1001", "1002", "2001", "2002", "2003")
	for _, e := range []string{"1001", "1002", "2001"} {
		op.rec.await("pbx."+e+".session.online", 1, 30*time.Second)
	}

	// 2001 out, 2002 in, and a key the bridge cannot change while it runs.
	changed := strings.Replace(op.base, "requests_per_second: 500", "requests_per_second: 400", 1)
	op.reload(t, changed+discovery+"extensions:\n  - username: \"2002\"\n")
	applied := op.awaitLog(t, "configuration reloaded: extensions applied", 1)
	if fmt.Sprint(applied["added"]) != "[2002]" || fmt.Sprint(applied["removed"]) != "[2001]" {
		t.Errorf("reload logged added %v, removed %v; want [2002] and [2001]", applied["added"], applied["removed"])
	}
	op.awaitLog(t, "pbx.rate_limit.requests_per_second changed: needs a restart", 1)
	op.rec.await("pbx.2002.session.online", 1, 20*time.Second)
	stopped := op.rec.await("pbx.2001.session.stopped", 1, 20*time.Second)
	if st := data[schema.SessionState](t, stopped[0]); st.Reason != "removed" {
		t.Errorf("2001 stopped with reason %q, want removed", st.Reason)
	}
	if code := op.infoCode(t, "2001"); code != "404" {
		t.Errorf("info of the removed 2001: error code %q, want 404", code)
	}
	if code := op.infoCode(t, "2002"); code != "" {
		t.Errorf("info of the added 2002: error code %q", code)
	}
	if restarts := op.logLines("pbx.rate_limit.requests_per_second changed: needs a restart"); len(restarts) != 1 {
		t.Errorf("%d restart lines, want 1", len(restarts))
	}

	// A bad file: every problem named, nothing changed.
	bad := changed + strings.Replace(discovery, `["1*"]`, `["1*", "["]`, 1) + "extensions:\n  - username: \"2003\"\n  - username: \"20 04\"\n"
	op.reload(t, bad)
	refused := op.awaitLog(t, "configuration not reloaded: the file has problems; nothing changed", 1)
	problems := fmt.Sprint(refused["problems"])
	for _, w := range []string{`discovery.include[1]: bad pattern "["`, "extensions[1].username"} {
		if !strings.Contains(problems, w) {
			t.Errorf("the refusal does not name %q: %s", w, problems)
		}
	}
	if code := op.infoCode(t, "2002"); code != "" {
		t.Errorf("after a bad file, 2002 answers error code %q: it must still be served", code)
	}
	if code := op.infoCode(t, "2003"); code != "404" {
		t.Errorf("after a bad file, 2003 answers error code %q, want 404", code)
	}

	if err := op.terminate(20 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, op.logs.String())
	}
	if n := op.sim.Logins("2003"); n != 0 {
		t.Errorf("2003 logged in %d times: the bad file was applied", n)
	}
	for _, e := range []string{"1001", "1002"} {
		if n := op.sim.Logins(e); n != 1 {
			t.Errorf("%s logged in %d times: a reload must leave the others undisturbed", e, n)
		}
		reasons := []string{}
		for _, ev := range op.rec.on("pbx." + e + ".session.stopped") {
			reasons = append(reasons, data[schema.SessionState](t, ev).Reason)
		}
		if slices.Contains(reasons, "removed") {
			t.Errorf("%s was removed by a reload: %v", e, reasons)
		}
	}
	op.checkNoCredentials(t)
}
