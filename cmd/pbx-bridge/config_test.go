package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

const minimal = `
pbx:
  url: https://pbx.example.com:8088
extensions:
  - username: "1001"
    secret: ${TEST_SECRET_1001}
`

func TestParseConfig(t *testing.T) {
	t.Setenv("TEST_SECRET_1001", "s3cr#t: {not yaml}")
	fc, err := parseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if got := fc.Extensions[0].Secret; got != "s3cr#t: {not yaml}" {
		t.Errorf("secret = %q: expansion must not be parsed as YAML", got)
	}
	if fc.SubjectPrefix != "pbx" || fc.NATS.Listen != "127.0.0.1:4222" || fc.PBX.UserAgent != "WebClient" || fc.Log.Level != "info" {
		t.Errorf("defaults not applied: %+v", fc)
	}
	bc := fc.bridgeConfig(nil)
	if bc.JetStream.Disabled || bc.JetStream.CheckOnly {
		t.Errorf("JetStream must be on and create its stream by default: %+v", bc.JetStream)
	}
}

func TestParseConfigDurationsAndSwitches(t *testing.T) {
	t.Setenv("TEST_SECRET_1001", "x")
	fc, err := parseConfig([]byte(minimal + `
jetstream:
  enabled: false
  create_stream: false
  duplicate_window: 90m
pbx_rate_limit_is_not_a_key: 1
`))
	if err == nil || !strings.Contains(err.Error(), "pbx_rate_limit_is_not_a_key") {
		t.Fatalf("unknown key: err = %v", err)
	}
	fc, err = parseConfig([]byte(strings.Replace(minimal, "pbx:\n", "pbx:\n  heartbeat: {ping_after: 45s}\n", 1) + `
jetstream:
  enabled: false
  create_stream: false
  duplicate_window: 90m
`))
	if err != nil {
		t.Fatal(err)
	}
	bc := fc.bridgeConfig(nil)
	if !bc.JetStream.Disabled || !bc.JetStream.CheckOnly || bc.JetStream.DuplicateWindow != 90*time.Minute || bc.PBX.PingAfter != 45*time.Second {
		t.Errorf("bridge config = %+v / %+v", bc.JetStream, bc.PBX)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Setenv("TEST_SECRET_1001", "x")
	cases := []configErrorCase{
		{"unset variable", strings.Replace(minimal, "TEST_SECRET_1001", "TEST_UNSET_VARIABLE_X", 1),
			[]string{"extensions[0].secret", "TEST_UNSET_VARIABLE_X"}},
		{"unsafe prefix", minimal + "subject_prefix: pbx.>\n", []string{"subject_prefix"}},
		{"unsafe extension", strings.Replace(minimal, `"1001"`, `"10.01"`, 1), []string{"extensions[0].username", "10.01"}},
		{"space in extension", strings.Replace(minimal, `"1001"`, `"10 01"`, 1), []string{"extensions[0].username"}},
		{"http url", strings.Replace(minimal, "https://", "http://", 1), []string{"pbx.url", "PBX_URL_NOT_HTTPS"}},
		{"user agent and url together", strings.Replace(strings.Replace(minimal, "https://", "http://", 1), "pbx:\n", "pbx:\n  user_agent: Foo\n", 1), []string{"pbx.url", "pbx.user_agent"}},
		{"user agent", strings.Replace(minimal, "pbx:\n", "pbx:\n  user_agent: Foo\n", 1), []string{"pbx.user_agent", "Foo"}},
		{"duplicate extension", minimal + "  - username: \"1001\"\n    secret: y\n", []string{"extensions[1].username", "twice"}},
		{"bad duration", minimal + "shutdown_timeout: soon\n", []string{"soon"}},
		{"bad log level", minimal + "log: {level: loud}\n", []string{"log.level"}},
		{"two nats auths", minimal + "nats: {token: a, user: b, password: c}\n", []string{"at most one"}},
		{"missing ca file", strings.Replace(minimal, "pbx:\n", "pbx:\n  ca_file: /nonexistent/ca.pem\n", 1), []string{"pbx.ca_file"}},
		{"first start", minimal + "catchup: {first_start: everything}\n", []string{"first_start"}},
		{"verification off with a CA", strings.Replace(minimal, "pbx:\n", "pbx:\n  ca_file: config_test.go\n  insecure_skip_verify: true\n", 1), []string{"pbx.insecure_skip_verify", "CAFile"}},
		{"fleet without jetstream", minimal + "fleet: {enabled: true}\njetstream: {enabled: false}\n", []string{"fleet.enabled", "JetStream"}},
		{"fleet ttl", minimal + "fleet: {enabled: true, lease_ttl: 1s}\n", []string{"fleet.lease_ttl"}},
		{"fleet offline release too soon", minimal + "fleet: {enabled: true, release_offline_after: 5s}\n", []string{"fleet.release_offline_after"}},
		{"fleet ttl below a logout", minimal + "fleet: {enabled: true, lease_ttl: 5s}\n", []string{"fleet.lease_ttl", "shutdown_timeout (10s)"}},
		{"no extensions", "pbx: {url: https://pbx}\n", []string{"at least one extension"}},
	}
	checkConfigErrors(t, cases)
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	t.Setenv("TEST_SECRET_1001", "x")
	if err := os.WriteFile(good, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(strings.Replace(minimal, `"1001"`, `"1*"`, 1)+"subject_prefix: \"a..b\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"validate", "--config", good}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "ok") {
		t.Errorf("good config: exit %d, %q %q", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	code := run([]string{"validate", "--config", bad}, &out, &errOut)
	if code != 1 {
		t.Errorf("bad config: exit %d, want 1", code)
	}
	msg := errOut.String()
	if !strings.Contains(msg, "2 problem(s)") || !strings.Contains(msg, "extensions[0].username") || !strings.Contains(msg, "subject_prefix") {
		t.Errorf("bad config output:\n%s", msg)
	}
	if code := run([]string{"validate", "--config", filepath.Join(dir, "missing.yaml")}, &out, &errOut); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Setenv("PBX_SECRET_1001", "x")
	if _, err := loadConfig("../../configs/pbx-bridge.example.yaml"); err != nil {
		t.Fatalf("the example configuration does not load: %v", err)
	}
}

// TestExampleConfigDocumentsEveryKey keeps configs/pbx-bridge.example.yaml
// complete: every key the loader knows appears in it.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	raw, err := os.ReadFile("../../configs/pbx-bridge.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(typ reflect.Type, node any, path string)
	walk = func(typ reflect.Type, node any, path string) {
		switch typ.Kind() {
		case reflect.Struct:
			if typ == reflect.TypeOf(duration(0)) {
				return
			}
			m, ok := node.(map[string]any)
			if !ok {
				t.Errorf("%s: not a mapping in the example", path)
				return
			}
			for i := 0; i < typ.NumField(); i++ {
				key := strings.Split(typ.Field(i).Tag.Get("yaml"), ",")[0]
				child, ok := m[key]
				if !ok {
					t.Errorf("%s%s is not in the example configuration", path, key)
					continue
				}
				walk(typ.Field(i).Type, child, path+key+".")
			}
		case reflect.Slice:
			items, ok := node.([]any)
			if ok && len(items) == 0 && typ.Elem().Kind() != reflect.Struct {
				return // a list of plain values: the key is documented
			}
			if !ok || len(items) == 0 {
				t.Errorf("%s: no list item in the example", path)
				return
			}
			walk(typ.Elem(), items[0], strings.TrimSuffix(path, ".")+"[0].")
		case reflect.Pointer:
			walk(typ.Elem(), node, path)
		}
	}
	walk(reflect.TypeOf(fileConfig{}), doc, "")
}

const openAPIMinimal = `
pbx:
  url: https://pbx.example.com:8088
  openapi:
    access_id: id-1
    access_key: ${TEST_ACCESS_KEY}
discovery:
  enabled: true
  interval: 1m
  include: ["1*", "2??"]
  exclude: ["1999"]
`

func TestParseConfigOpenAPIAndDiscovery(t *testing.T) {
	t.Setenv("TEST_ACCESS_KEY", "k#y: {not yaml}")
	fc, err := parseConfig([]byte(openAPIMinimal + "extensions:\n  - username: \"3001\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	bc := fc.bridgeConfig(nil)
	if bc.OpenAPI.AccessID != "id-1" || bc.OpenAPI.AccessKey != "k#y: {not yaml}" {
		t.Errorf("openapi = %+v", bc.OpenAPI)
	}
	d := bc.Discovery
	if !d.Enabled || d.Interval != time.Minute || !reflect.DeepEqual(d.Include, []string{"1*", "2??"}) || !reflect.DeepEqual(d.Exclude, []string{"1999"}) {
		t.Errorf("discovery = %+v", d)
	}
	if len(bc.Extensions) != 1 || bc.Extensions[0].Username != "3001" || bc.Extensions[0].Secret != "" {
		t.Errorf("extensions = %+v: a secret is optional with OpenAPI credentials", bc.Extensions)
	}
	// Discovery alone: no extension listed at all.
	if _, err := parseConfig([]byte(openAPIMinimal)); err != nil {
		t.Errorf("discovery without extensions: %v", err)
	}
}

func TestConfigErrorsOpenAPIAndDiscovery(t *testing.T) {
	t.Setenv("TEST_ACCESS_KEY", "k")
	t.Setenv("TEST_SECRET_1001", "x")
	cases := []configErrorCase{
		{"bad include pattern", strings.Replace(openAPIMinimal, `"2??"`, `"["`, 1), []string{`discovery.include[1]: bad pattern "["`}},
		{"bad exclude pattern", strings.Replace(openAPIMinimal, `"1999"`, `"1[9"`, 1), []string{`discovery.exclude[0]`, `"1[9"`}},
		{"no secret, no openapi", "pbx: {url: https://pbx}\nextensions:\n  - username: \"1001\"\n", []string{"extensions[0].secret"}},
		{"discovery without openapi", minimal + "discovery: {enabled: true}\n", []string{"discovery.enabled", "pbx.openapi"}},
		{"no extensions, discovery off", strings.Replace(openAPIMinimal, "enabled: true", "enabled: false", 1), []string{"extensions"}},
		{"access id without key", strings.Replace(openAPIMinimal, "access_key: ${TEST_ACCESS_KEY}", `access_key: ""`, 1), []string{"pbx.openapi"}},
		{"unset key variable", strings.Replace(openAPIMinimal, "TEST_ACCESS_KEY", "TEST_UNSET_ACCESS_KEY", 1), []string{"pbx.openapi.access_key", "TEST_UNSET_ACCESS_KEY"}},
		{"bad interval", strings.Replace(openAPIMinimal, "interval: 1m", "interval: often", 1), []string{"often"}},
		{"negative interval", strings.Replace(openAPIMinimal, "interval: 1m", "interval: -1m", 1), []string{"discovery.interval"}},
	}
	checkConfigErrors(t, cases)
}

func TestValidateCommandNewKeys(t *testing.T) {
	t.Setenv("TEST_ACCESS_KEY", "access-key-never-printed")
	path := filepath.Join(t.TempDir(), "c.yaml")
	bad := strings.Replace(strings.Replace(openAPIMinimal, `"2??"`, `"["`, 1), "access_id: id-1", `access_id: ""`, 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"validate", "--config", path}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; %s", code, errOut.String())
	}
	for _, w := range []string{`discovery.include[1]: bad pattern "["`, "pbx.openapi", "discovery.enabled"} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("validate output does not name %q:\n%s", w, errOut.String())
		}
	}
	if strings.Contains(errOut.String(), "access-key-never-printed") {
		t.Errorf("the access key is in the output:\n%s", errOut.String())
	}
}

// configErrorCase is a configuration that must be refused, and what the
// error must mention (keys, values).
type configErrorCase struct {
	name, yaml string
	want       []string
}

func checkConfigErrors(t *testing.T, cases []configErrorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
