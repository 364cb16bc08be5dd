// Command pbx-bridge connects a Yeastar P-Series PBX to NATS.
//
//	pbx-bridge run --config FILE       the daemon
//	pbx-bridge validate --config FILE  check a configuration
//	pbx-bridge extensions --config FILE  the PBX's extensions and which are served
//	pbx-bridge status --nats URL       the fleet's replicas and what each owns
//	pbx-bridge sim [flags]             a standalone PBX simulator
//	pbx-bridge demo                    NATS, simulator, bridge and a subscriber in one process
//	pbx-bridge bench [flags]           every figure of docs/benchmarks.md next to its limit
//	pbx-bridge version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `pbx-bridge connects a Yeastar P-Series PBX to NATS.

Usage:
  pbx-bridge run --config FILE       run the bridge
  pbx-bridge validate --config FILE  check a configuration file and exit
  pbx-bridge extensions --config FILE
                                     list the PBX's extensions (OpenAPI) and which the bridge would serve
  pbx-bridge status --nats URL [--prefix pbx]
                                     print a fleet's replicas and the extensions each owns
  pbx-bridge sim [flags]             run a standalone PBX simulator (see: pbx-bridge sim -h)
  pbx-bridge demo [flags]            embedded NATS + simulator + bridge + a subscriber printing events
  pbx-bridge bench [flags]           measure the bridge against the simulator and its limits (see: pbx-bridge bench -h)
  pbx-bridge version                 print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	var err error
	switch args[0] {
	case "run":
		err = runCmd(ctx, args[1:], stderr)
	case "validate":
		err = validateCmd(args[1:], stdout, stderr)
	case "extensions":
		err = extensionsCmd(ctx, args[1:], stdout, stderr)
	case "status":
		err = statusCmd(args[1:], stdout, stderr)
	case "sim":
		err = simCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		err = benchCmd(ctx, args[1:], stdout, stderr)
	case "demo":
		err = demoCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "pbx-bridge", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "pbx-bridge: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errReported):
		return 1
	default:
		fmt.Fprintf(stderr, "pbx-bridge %s: %v\n", args[0], err)
		return 1
	}
}

var (
	errUsage    = errors.New("usage")
	errReported = errors.New("failed; reported above")
)

// newFlags makes a flag set that reports to stderr and returns errors.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pbx-bridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		return errUsage
	}
	return nil
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
