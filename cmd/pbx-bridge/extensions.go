package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
)

// extensionsCmd lists the PBX's extensions through its OpenAPI and says,
// for each, whether the bridge of this configuration would serve it and
// which rule decided: the first thing to run against a new PBX. It logs no
// extension in, and revokes its access token before it exits.
func extensionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("extensions", stderr)
	path := fs.String("config", "pbx-bridge.yaml", "configuration file")
	verbose := fs.Bool("v", false, "log the OpenAPI requests to stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fc, err := loadConfig(*path)
	if err != nil {
		return reportProblems(stderr, *path, err)
	}
	if fc.PBX.OpenAPI.AccessID == "" || fc.PBX.OpenAPI.AccessKey == "" {
		fmt.Fprintf(stderr, "pbx-bridge extensions: %s has no OpenAPI credentials: set pbx.openapi.access_id and pbx.openapi.access_key "+
			"(PBX web portal: Integrations > Linkus SDK, or Integrations > API)\n", *path)
		return errReported
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = newLogger(stderr, "debug", fc.Log.Format)
	}
	oa, err := openapi.New(openapi.Config{
		URL:                fc.PBX.URL,
		AccessID:           fc.PBX.OpenAPI.AccessID,
		AccessKey:          fc.PBX.OpenAPI.AccessKey,
		CAFile:             fc.PBX.CAFile,
		InsecureSkipVerify: fc.PBX.InsecureSkipVerify,
		RequestTimeout:     time.Duration(fc.PBX.RequestTimeout),
		Logger:             log,
	})
	if err != nil {
		return err
	}
	defer func() {
		// Revoke the token even after Ctrl-C: the PBX allows few at once.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := oa.Close(closeCtx); err != nil {
			fmt.Fprintf(stderr, "pbx-bridge extensions: revoking the access token: %v\n", err)
		}
	}()

	list, err := oa.Extensions(ctx)
	switch {
	case errors.Is(err, openapi.ErrExtensionListRefused):
		fmt.Fprintf(stderr, "pbx-bridge extensions: the PBX refuses to list its extensions to these OpenAPI credentials (%v). "+
			"Remedy: use API credentials (PBX web portal, Integrations > API: Client ID and Client Secret) as pbx.openapi.access_id "+
			"and pbx.openapi.access_key, or list the extensions to serve under extensions in %s\n", err, *path)
		return errReported
	case errors.Is(err, openapi.ErrAuth):
		fmt.Fprintf(stderr, "pbx-bridge extensions: the PBX refused the OpenAPI credentials (%v). "+
			"Check pbx.openapi.access_id and pbx.openapi.access_key (Integrations > Linkus SDK, or Integrations > API); "+
			"a PBX blocks an IP after a few failed attempts, so correct them before trying again\n", err)
		return errReported
	case err != nil && !errors.Is(err, openapi.ErrExtensionListIncomplete):
		return err
	}
	rows := extensionRows(list, fc)
	printExtensions(stdout, rows, len(list))
	if err != nil {
		fmt.Fprintf(stderr, "pbx-bridge extensions: %v: the table may miss extensions\n", err)
		return errReported
	}
	return nil
}

// extensionRow is one line of the extensions table.
type extensionRow struct {
	Number, Name string
	Served       bool
	Rule         string
}

// extensionRows decides, for every listed extension and every configured
// one, whether the bridge of fc serves it, by the rules the bridge applies:
// a configured extension always, a listed one when discovery is on and
// its patterns match. The PBX's order is kept; configured extensions the
// list lacks come last.
func extensionRows(list []openapi.Extension, fc *fileConfig) []extensionRow {
	configured := make(map[string]bool, len(fc.Extensions))
	for _, e := range fc.Extensions {
		configured[e.Username] = true
	}
	d := fc.bridgeConfig(nil).Discovery
	listed := make(map[string]bool, len(list))
	var rows []extensionRow
	for _, e := range list {
		listed[e.Number] = true
		r := extensionRow{Number: e.Number, Name: e.Name}
		switch {
		case configured[e.Number]:
			r.Served, r.Rule = true, "configured"
		case !d.Enabled:
			r.Rule = "not configured, discovery off"
		case bridge.ValidToken(e.Number) != nil:
			r.Rule = "number is not a safe subject token"
		default:
			r.Served, r.Rule = bridge.MatchExtension(e.Number, d)
		}
		rows = append(rows, r)
	}
	for _, e := range fc.Extensions {
		if !listed[e.Username] {
			rows = append(rows, extensionRow{Number: e.Username, Served: true, Rule: "configured (not on the PBX's list)"})
		}
	}
	return rows
}

func printExtensions(w io.Writer, rows []extensionRow, listed int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tNAME\tSERVED\tRULE")
	served, configured := 0, 0
	for _, r := range rows {
		yes := "no"
		if r.Served {
			yes = "yes"
			served++
		}
		if strings.HasPrefix(r.Rule, "configured") {
			configured++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(r.Number), printable(r.Name), yes, r.Rule)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d extensions on the PBX's list; %d would be served: %d configured, %d discovered\n",
		listed, served, configured, served-configured)
}

// printable keeps what the PBX sent from breaking the table or the
// terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
