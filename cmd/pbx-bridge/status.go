package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// statusCmd asks a fleet for its status (<prefix>.fleet.status, answered by
// any replica from the lease bucket) and prints it as a table: every live
// replica with its last heartbeat and the extensions it owns, then the
// extensions that nobody owns at the moment.
func statusCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	url := fs.String("nats", nats.DefaultURL, "NATS server URL(s)")
	prefix := fs.String("prefix", bridge.DefaultPrefix, "subject prefix of the fleet")
	creds := fs.String("creds", "", "NATS credentials file")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for an answer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts := []nats.Option{nats.Name("pbx-bridge status")}
	if *creds != "" {
		opts = append(opts, nats.UserCredentials(*creds))
	}
	nc, err := nats.Connect(*url, opts...)
	if err != nil {
		return fmt.Errorf("nats %s: %w", *url, err)
	}
	defer nc.Close()
	m, err := nc.Request(*prefix+".fleet.status", nil, *timeout)
	if err != nil {
		return fmt.Errorf("%s.fleet.status: %w (is a bridge with fleet.enabled running under this prefix?)", *prefix, err)
	}
	if code := m.Header.Get("Nats-Service-Error-Code"); code != "" {
		return fmt.Errorf("%s.fleet.status answered %s: %s", *prefix, code, m.Data)
	}
	var st schema.FleetStatus
	if err := json.Unmarshal(m.Data, &st); err != nil {
		return fmt.Errorf("%s.fleet.status: %w", *prefix, err)
	}
	printStatus(stdout, st, time.Now())
	return nil
}

func printStatus(w io.Writer, st schema.FleetStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tHEARTBEAT\tOWNS\tEXTENSIONS")
	total := 0
	for _, r := range st.Replicas {
		total += len(r.Extensions)
		fmt.Fprintf(tw, "%s\t%s ago\t%d\t%s\n", r.Replica, now.Sub(r.Heartbeat).Round(100*time.Millisecond), len(r.Extensions), strings.Join(r.Extensions, " "))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d replicas, %d extensions owned, %d changing hands", len(st.Replicas), total, len(st.Unowned))
	if len(st.Unowned) > 0 {
		fmt.Fprintf(w, ": %s", strings.Join(st.Unowned, " "))
	}
	fmt.Fprintf(w, " (as %s sees it)\n", st.Replica)
	if st.Leader != "" {
		fmt.Fprintf(w, "OpenAPI leader (extension list, event socket): %s\n", st.Leader)
	}
}
