package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx/pbxtest"
)

func simCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sim", stderr)
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on")
	exts := fs.String("extensions", "1001,1002", "comma-separated extension numbers")
	caFile := fs.String("ca-file", "", "where to write the CA certificate (PEM); default: a file in a new temporary directory")
	every := fs.Duration("calls-every", 0, "generate a random call for a random extension this often (0: never)")
	fwVersion := fs.String("pbx-version", "37.12.0.10", "firmware version the simulator reports")
	cn := fs.Bool("cn", false, `simulate a "cn" plan PBX (base_oem_id 1)`)
	control := fs.String("control", "", "serve the control API (calls, pushes, request counters) on this loopback address, for pbx-bridge bench (empty: none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	numbers, err := extensionList(*exts)
	if err != nil {
		return err
	}
	opts := pbxtest.Options{Listen: *listen, Version: *fwVersion}
	if *cn {
		opts.BaseOEMID = 1
	}
	sim, err := pbxtest.NewServer(opts)
	if err != nil {
		return err
	}
	defer sim.Close()
	if *caFile == "" {
		dir, err := os.MkdirTemp("", "pbx-bridge-sim-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*caFile = filepath.Join(dir, "ca.pem")
	}
	if err := sim.WriteCAFile(*caFile); err != nil {
		return err
	}
	id, key := sim.OpenAPICredentials()
	fmt.Fprintf(stdout, "PBX simulator listening\n  url:        %s\n  ca_file:    %s\n  access_id:  %s\n  access_key: %s\n",
		sim.URL(), *caFile, id, key)
	// The bridge mints the signatures and discovers the extensions with
	// the OpenAPI credentials; the secrets are for a configuration
	// without them.
	fmt.Fprintf(stdout, "\nA configuration for it:\n\npbx:\n  url: %s\n  ca_file: %s\n  openapi:\n    access_id: %q\n    access_key: %q\ndiscovery:\n  enabled: true\n",
		sim.URL(), *caFile, id, key)
	fmt.Fprintf(stdout, "\nOr, without pbx.openapi and discovery, the extensions with their secrets:\n\nextensions:\n")
	for _, n := range numbers {
		e := sim.AddExtension(pbxtest.Extension{Number: n})
		fmt.Fprintf(stdout, "  - username: %q\n    secret: %q\n", e.Number, e.Secret)
	}
	fmt.Fprintln(stdout)
	if *control != "" {
		u, err := serveSimControl(ctx, sim, numbers, *control)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "control API: %s\n", u)
	}
	if *every > 0 {
		fmt.Fprintf(stdout, "generating a call every %s; Ctrl-C to stop\n", *every)
		go generateCalls(ctx, sim, numbers, *every, stdout)
	}
	<-ctx.Done()
	return nil
}

// extensionList parses and checks a comma-separated list of extensions,
// where FIRST-LAST stands for the numbers from FIRST to LAST.
func extensionList(s string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		lo, hi, ok := strings.Cut(n, "-")
		first, err1 := strconv.Atoi(lo)
		last, err2 := strconv.Atoi(hi)
		if ok && err1 == nil && err2 == nil {
			if first < 0 || last < first || last-first >= maxExtensionRange {
				return nil, fmt.Errorf("--extensions: %q is no range FIRST-LAST of at most %d numbers", n, maxExtensionRange)
			}
			for i := first; i <= last; i++ {
				out = append(out, strconv.Itoa(i))
			}
			continue
		}
		if err := bridge.ValidToken(n); err != nil {
			return nil, fmt.Errorf("--extensions: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// maxExtensionRange bounds one FIRST-LAST range of --extensions.
const maxExtensionRange = 100_000

// generateCalls makes a random call for a random extension every d.
func generateCalls(ctx context.Context, sim *pbxtest.Server, exts []string, d time.Duration, w io.Writer) {
	t := time.NewTicker(d)
	defer t.Stop()
	kinds := []pbxtest.CallKind{pbxtest.Incoming, pbxtest.Outgoing, pbxtest.Missed}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c := pbxtest.Call{Kind: kinds[rand.IntN(len(kinds))], Peer: fmt.Sprintf("55501%02d", rand.IntN(100))}
		if c.Kind != pbxtest.Missed {
			c.TalkDuration = 1 + rand.IntN(300)
		}
		ext := exts[rand.IntN(len(exts))]
		rec, err := sim.Call(ext, c)
		if err != nil {
			fmt.Fprintf(w, "call failed: %v\n", err)
			continue
		}
		fmt.Fprintf(w, "sim: %s call for %s with %s (cdr id %d)\n", c.Kind, ext, c.Peer, rec.ID)
	}
}
