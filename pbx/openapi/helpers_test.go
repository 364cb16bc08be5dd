package openapi_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/testrig"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// wait bounds every await.
const wait = testrig.Wait

// TestMain fails the run if any goroutine of package openapi (or of a pbx
// session a test opened) outlives the tests.
func TestMain(m *testing.M) {
	testrig.RunChecked(m, "github.com/pbx-bridge/pbx-bridge/pbx/openapi", "github.com/pbx-bridge/pbx-bridge/pbx")
}

// newPBX starts a simulator that the test closes.
func newPBX(t *testing.T, opts pbxtest.Options) *pbxtest.Server { return testrig.NewPBX(t, opts) }

// testLogger sends the package's logs to the test's log, shown on failure.
func testLogger(t *testing.T) *slog.Logger { return testrig.Logger(t) }

// eventually polls cond until it holds, failing the test after the deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testrig.Eventually(t, what, cond)
}

// recorder collects strings from hooks and loggers on several goroutines.
type recorder = testrig.Recorder

// syncBuffer is a bytes.Buffer for a logger on several goroutines.
type syncBuffer = testrig.SyncBuffer

// linkusOnline logs ext in with a Linkus session that the test closes, and
// awaits its topic list: from then on the PBX lists ext online.
func linkusOnline(t *testing.T, srv *pbxtest.Server, ext pbxtest.Extension) {
	t.Helper()
	lists := len(srv.TopicLists(ext.Number))
	s, err := pbx.Open(context.Background(), pbx.Config{URL: srv.URL(), Username: ext.Number, Secret: ext.Secret,
		RootCAs: srv.CertPool(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	eventually(t, "the session's topic list", func() bool { return len(srv.TopicLists(ext.Number)) > lists })
}
