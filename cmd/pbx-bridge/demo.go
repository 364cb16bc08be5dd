package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/bridge/natsembed"
	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

// demoCmd runs everything in one process: an embedded NATS server, the PBX
// simulator making calls, the bridge, and a subscriber printing each event
// as it arrives, so that a newcomer sees events flow with one command.
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	exts := fs.String("extensions", "1001,1002", "comma-separated extension numbers")
	every := fs.Duration("calls-every", 2*time.Second, "how often the simulator makes a call")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	listen := fs.String("nats-listen", "127.0.0.1:4222", "where the embedded NATS server listens (port 0: any free port)")
	level := fs.String("log-level", "warn", "bridge log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	numbers, err := extensionList(*exts)
	if err != nil {
		return err
	}
	if len(numbers) < 2 {
		return fmt.Errorf("--extensions: the demo calls from one extension to another, so it needs at least two (got %q)", *exts)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	log := newLogger(stderr, *level, "text")

	dir, err := os.MkdirTemp("", "pbx-bridge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := natsembed.Start(*listen, dir)
	if err != nil {
		// Most likely a NATS server already runs on 4222: the demo does not
		// need that port, any free one will do.
		fmt.Fprintf(stderr, "%v; using a free port instead (set one with --nats-listen)\n", err)
		if ns, err = natsembed.Start("127.0.0.1:0", dir); err != nil {
			return err
		}
	}
	defer ns.Shutdown()

	sim, err := pbxtest.NewServer(pbxtest.Options{})
	if err != nil {
		return err
	}
	defer sim.Close()
	for _, n := range numbers {
		sim.AddExtension(pbxtest.Extension{Number: n})
	}
	cfg := demoConfig(sim, log)

	nc, err := nats.Connect(ns.ClientURL(), nats.Name("pbx-bridge demo"))
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := nc.Subscribe("pbx.>", func(m *nats.Msg) {
		if m.Header.Get("Ce-Type") == "" {
			return // a request, not an event
		}
		fmt.Fprintf(stdout, "\n<- %s\n%s\n", m.Subject, indent(m.Data))
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()

	b, err := bridge.New(nc, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pbx-bridge demo\n  NATS:          %s (embedded, JetStream on)\n  PBX simulator: %s\n  extensions:    %s (discovered through the simulator's OpenAPI)\n  try:           nats --server %s sub 'pbx.>'\n                 nats --server %s req pbx.%s.cdr.query '{\"size\":5}'\n",
		ns.ClientURL(), sim.URL(), strings.Join(numbers, ", "), ns.ClientURL(), ns.ClientURL(), numbers[0])
	runErr := make(chan error, 1)
	go func() { runErr <- b.Run(ctx) }()
	go generateCalls(ctx, sim, numbers, *every, io.Discard)
	go demoRequests(ctx, nc, stdout, numbers)
	err = <-runErr
	_ = nc.Drain()
	return err
}

// demoConfig is the demo bridge's configuration. No secrets: the bridge
// discovers the extensions and mints their login signatures through the
// simulator's OpenAPI, as against a real PBX.
func demoConfig(sim *pbxtest.Server, log *slog.Logger) bridge.Config {
	id, key := sim.OpenAPICredentials()
	return bridge.Config{
		PBX:       pbx.Config{URL: sim.URL(), RootCAs: sim.CertPool()},
		OpenAPI:   bridge.OpenAPIConfig{AccessID: id, AccessKey: key},
		Discovery: bridge.DiscoveryConfig{Enabled: true},
		// Live calls and click-to-call, on in the demo only.
		Events:           bridge.EventsConfig{Enabled: true},
		AllowCallControl: true,
		Version:          version,
		Logger:           log,
	}
}

// demoRequests shows, once the first extension is online, one
// request/reply round trip and one click-to-call.
func demoRequests(ctx context.Context, nc *nats.Conn, stdout io.Writer, numbers []string) {
	for ctx.Err() == nil {
		m, err := nc.Request("pbx."+numbers[0]+".info", nil, time.Second)
		if err == nil && bytes.Contains(m.Data, []byte(`"online"`)) {
			fmt.Fprintf(stdout, "\n-> request pbx.%s.info\n<- reply\n%s\n", numbers[0], indent(m.Data))
			demoClickToCall(ctx, nc, stdout, numbers[0], numbers[1])
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func indent(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "   ", "  ") != nil {
		return string(b)
	}
	return "   " + out.String()
}

// demoClickToCall shows one click-to-call round trip: from dials to, and
// hangs up two seconds later; the call's events print as they arrive.
func demoClickToCall(ctx context.Context, nc *nats.Conn, stdout io.Writer, from, to string) {
	req := func(subject, body string) []byte {
		fmt.Fprintf(stdout, "\n-> request %s %s\n", subject, body)
		m, err := nc.Request(subject, []byte(body), 5*time.Second)
		if err != nil {
			fmt.Fprintf(stdout, "<- %v\n", err)
			return nil
		}
		fmt.Fprintf(stdout, "<- reply\n%s\n", indent(m.Data))
		return m.Data
	}
	var dial struct {
		CallID string `json:"call_id"`
	}
	if json.Unmarshal(req("pbx."+from+".call.dial", `{"callee":"`+to+`"}`), &dial) != nil || dial.CallID == "" {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(2 * time.Second):
	}
	req("pbx."+from+".call.hangup", `{"call_id":"`+dial.CallID+`"}`)
}
