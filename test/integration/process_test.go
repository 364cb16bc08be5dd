package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/pbx-bridge once per test run.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pbx-bridge-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pbx-bridge")
		if runtime.GOOS == "windows" {
			binPath += ".exe"
		}
		cmd := exec.Command("go", "build", "-o", binPath, "../../cmd/pbx-bridge")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// process is a pbx-bridge process started by a test.
type process struct {
	t    testing.TB
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	err  error
	mu   sync.Mutex
	info map[string]string // "msg" -> the log line's url, for lines that have one
}

// startProcess runs `pbx-bridge run --config <config>` with env added.
func startProcess(t testing.TB, config string, env ...string) *process {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pbx-bridge.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &process{t: t, logs: &syncBuffer{}, done: make(chan struct{}), info: map[string]string{}}
	p.cmd = exec.Command(binary(t), "run", "--config", path)
	p.cmd.Env = append(os.Environ(), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.readLogs(stderr)
	t.Cleanup(func() { p.kill() })
	return p
}

// startReplicas starts one process per name, with config(name) and env;
// if the test fails, each one's goroutines (dump) and log are printed.
func startReplicas(t *testing.T, config func(name string) string, env []string, names ...string) map[string]*process {
	t.Helper()
	procs := map[string]*process{}
	for _, name := range names {
		procs[name] = startProcess(t, config(name), env...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range procs {
				p.dump()
				t.Logf("log of %s:\n%s", name, p.logs.String())
			}
		}
	})
	return procs
}

// dump makes a process still running print every goroutine's stack into
// its log and exit (SIGQUIT): the evidence of what was stuck.
func (p *process) dump() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// readLogs keeps the JSON log and remembers the urls it announces.
func (p *process) readLogs(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(p.logs, line)
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			if url, ok := rec["url"].(string); ok {
				p.mu.Lock()
				p.info[fmt.Sprint(rec["msg"])] = url
				p.mu.Unlock()
			}
		}
	}
	p.err = p.cmd.Wait()
	close(p.done)
}

// url waits for the log line msg and returns its url attribute.
func (p *process) url(msg string) string {
	p.t.Helper()
	var u string
	waitFor(p.t, "log line "+msg, 20*time.Second, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		u = p.info[msg]
		return u != ""
	})
	return u
}

// kill ends the process abruptly (SIGKILL): no logout, no drain.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// terminate sends SIGTERM and waits for a clean exit.
func (p *process) terminate(d time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("no exit %s after SIGTERM", d)
	}
}

// logContains reports whether the process logged s.
func (p *process) logContains(s string) bool { return strings.Contains(p.logs.String(), s) }

// writeCAFile writes the simulator's CA certificate for a process's pbx.ca_file.
func writeCAFile(t testing.TB, sim *pbxtest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := sim.WriteCAFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// extensionsYAML returns the extensions block of a process's configuration,
// each secret read from an environment variable, and those variables: the
// secrets never stand in the file.
func extensionsYAML(exts []string, secrets map[string]string) (env []string, block string) {
	var b strings.Builder
	for _, e := range exts {
		env = append(env, "SECRET_"+e+"="+secrets[e])
		fmt.Fprintf(&b, "  - username: %q\n    secret: ${SECRET_%s}\n", e, e)
	}
	return env, b.String()
}

// TestMain removes the binary that binary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
