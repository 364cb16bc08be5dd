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
		var me *multierror.Error
		if errors.As(err, &me) {
			fmt.Fprintf(stderr, "%s: %d problem(s):\n", *path, len(me.Errors))
			for _, e := range me.Errors {
				fmt.Fprintf(stderr, "  - %v\n", e)
			}
			return errReported
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d extensions, subject prefix %q, pbx %s)\n", *path, len(fc.Extensions), fc.SubjectPrefix, fc.PBX.URL)
	return nil
}
