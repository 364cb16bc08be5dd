package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// simPBX starts a simulated PBX with the extensions and writes its CA
// certificate; it returns the simulator and a pbx: section for it.
func simPBX(t *testing.T, numbers ...string) (*pbxtest.Server, string) {
	t.Helper()
	sim, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	for _, n := range numbers {
		sim.AddExtension(pbxtest.Extension{Number: n})
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := sim.WriteCAFile(ca); err != nil {
		t.Fatal(err)
	}
	id, key := sim.OpenAPICredentials()
	t.Setenv("TEST_OPENAPI_KEY", key)
	return sim, fmt.Sprintf("pbx:\n  url: %s\n  ca_file: %s\n  openapi:\n    access_id: %q\n    access_key: ${TEST_OPENAPI_KEY}\n", sim.URL(), ca, id)
}

// runExtensions runs `pbx-bridge extensions` on config.
func runExtensions(t *testing.T, config string) (code int, stdout, stderr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pbx-bridge.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code = run([]string{"extensions", "--config", path}, &out, &errOut)
	return code, out.String(), errOut.String()
}

// rowsOf reads the table: number -> "served rule".
func rowsOf(stdout string) map[string]string {
	rows := map[string]string{}
	line := regexp.MustCompile(`^(\S+)\s+Ext \S+\s+(yes|no)\s+(.+)$|^(\S+)\s+(yes|no)\s+(.+)$`)
	for _, l := range strings.Split(stdout, "\n") {
		m := line.FindStringSubmatch(strings.TrimSpace(l))
		switch {
		case m == nil:
		case m[1] != "":
			rows[m[1]] = m[2] + " " + m[3]
		default:
			rows[m[4]] = m[5] + " " + m[6]
		}
	}
	return rows
}

func TestExtensionsCommand(t *testing.T) {
	sim, pbxYAML := simPBX(t, "1001", "1002", "1999", "2001", "3001")
	code, out, errOut := runExtensions(t, pbxYAML+`discovery:
  enabled: true
  include: ["1*", "2*"]
  exclude: ["1999"]
extensions:
  - username: "3001"
  - username: "4001"
`)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	want := map[string]string{
		"1001": "yes include: 1*",
		"1002": "yes include: 1*",
		"1999": "no exclude: 1999",
		"2001": "yes include: 2*",
		"3001": "yes configured",
		"4001": "yes configured (not on the PBX's list)",
	}
	got := rowsOf(out)
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: %q, want %q\n%s", n, got[n], w, out)
		}
	}
	if !strings.Contains(out, "Ext 1001") || !strings.Contains(out, "5 extensions on the PBX's list; 5 would be served: 2 configured, 3 discovered") {
		t.Errorf("no names or no summary:\n%s", out)
	}
	for _, n := range []string{"1001", "1002", "1999", "2001", "3001"} {
		if sim.Logins(n) != 0 || sim.SignsMinted(n) != 0 {
			t.Errorf("%s: %d logins, %d signatures minted: the command must log no extension in", n, sim.Logins(n), sim.SignsMinted(n))
		}
	}
	if n := sim.LiveOpenAPITokens(); n != 0 {
		t.Errorf("%d access tokens alive after the command: it must revoke its token", n)
	}
	if _, key := sim.OpenAPICredentials(); strings.Contains(out+errOut, key) {
		t.Error("the AccessKey is in the output")
	}
}

func TestExtensionsCommandDiscoveryOff(t *testing.T) {
	_, pbxYAML := simPBX(t, "1001", "1002")
	code, out, errOut := runExtensions(t, pbxYAML+"extensions:\n  - username: \"1002\"\n")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got := rowsOf(out)
	if got["1001"] != "no not configured, discovery off" || got["1002"] != "yes configured" {
		t.Errorf("rows = %q\n%s", got, out)
	}
}

func TestExtensionsCommandListRefused(t *testing.T) {
	sim, pbxYAML := simPBX(t, "1001")
	sim.SetListAllowed(false)
	code, out, errOut := runExtensions(t, pbxYAML+"discovery: {enabled: true}\n")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if lines := strings.Count(strings.TrimSpace(errOut), "\n") + 1; lines != 1 {
		t.Errorf("%d lines on stderr, want one clear error:\n%s", lines, errOut)
	}
	for _, w := range []string{"refuses to list", "Integrations > API", "under extensions"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("the error does not say %q:\n%s", w, errOut)
		}
	}
	if out != "" {
		t.Errorf("a table for a refused listing:\n%s", out)
	}
	if n := sim.LiveOpenAPITokens(); n != 0 {
		t.Errorf("%d access tokens alive after a refused listing", n)
	}
}

func TestExtensionsCommandBadCredentials(t *testing.T) {
	sim, pbxYAML := simPBX(t, "1001")
	sim.SetOpenAPICredentials("other-id", "other-key")
	code, _, errOut := runExtensions(t, pbxYAML+"discovery: {enabled: true}\n")
	if code != 1 || !strings.Contains(errOut, "refused the OpenAPI credentials") || !strings.Contains(errOut, "pbx.openapi.access_key") {
		t.Errorf("exit %d:\n%s", code, errOut)
	}
	if strings.Contains(errOut, os.Getenv("TEST_OPENAPI_KEY")) {
		t.Error("the configured AccessKey is in the error")
	}
	if sim.GetTokenCalls() != 1 {
		t.Errorf("%d get_token calls: refused credentials must not be retried", sim.GetTokenCalls())
	}
}

func TestExtensionsCommandNeedsCredentials(t *testing.T) {
	t.Setenv("TEST_SECRET_1001", "x")
	code, _, errOut := runExtensions(t, minimal)
	if code != 1 || !strings.Contains(errOut, "pbx.openapi.access_id") {
		t.Errorf("exit %d:\n%s", code, errOut)
	}
}

func TestExtensionRows(t *testing.T) {
	t.Setenv("TEST_ACCESS_KEY", "k")
	fc, err := parseConfig([]byte(openAPIMinimal))
	if err != nil {
		t.Fatal(err)
	}
	list := []openapi.Extension{{Number: "1001"}, {Number: "1999"}, {Number: "250"}, {Number: "3001"}, {Number: "1.1"}, {Number: "1 2"}}
	want := []extensionRow{
		{"1001", "", true, "include: 1*"},
		{"1999", "", false, "exclude: 1999"},
		{"250", "", true, "include: 2??"},
		{"3001", "", false, "include: (no pattern matches)"},
		{"1.1", "", false, "number is not a safe subject token"},
		{"1 2", "", false, "number is not a safe subject token"},
	}
	got := extensionRows(list, fc)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows:\n got %v\nwant %v", got, want)
	}
}
