package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-multierror"
)

func validateCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	path := fs.String("config", "pbx-bridge.yaml", "configuration file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fc, err := loadConfig(*path)
	if err != nil {
		return reportProblems(stderr, *path, err)
	}
	discovery := "off"
	if fc.Discovery.Enabled {
		discovery = "on"
	}
	fmt.Fprintf(stdout, "%s: ok (%d extensions, discovery %s, subject prefix %q, pbx %s)\n",
		*path, len(fc.Extensions), discovery, fc.SubjectPrefix, fc.PBX.URL)
	return nil
}

// reportProblems prints the problems of a configuration error, one a
// line, and returns errReported; any other error is returned as it is.
func reportProblems(stderr io.Writer, path string, err error) error {
	var me *multierror.Error
	if !errors.As(err, &me) {
		return err
	}
	fmt.Fprintf(stderr, "%s: %d problem(s):\n", path, len(me.Errors))
	for _, e := range me.Errors {
		fmt.Fprintf(stderr, "  - %v\n", e)
	}
	return errReported
}

// problems lists the problems of a configuration error.
func problems(err error) []string {
	var me *multierror.Error
	if !errors.As(err, &me) {
		return []string{err.Error()}
	}
	out := make([]string, len(me.Errors))
	for i, e := range me.Errors {
		out[i] = e.Error()
	}
	return out
}
