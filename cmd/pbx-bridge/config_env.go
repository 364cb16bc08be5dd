package main

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/hashicorp/go-multierror"
)

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR} in every string value after parsing (so that a
// secret with YAML syntax in it cannot change the document's structure);
// $$ is a literal $. An unset variable is an error naming the key.
func expandEnv(v reflect.Value, path string, errs **multierror.Error) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if path != "" {
				name = path + "." + name
			}
			expandEnv(v.Field(i), name, errs)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			expandEnv(v.Index(i), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.String:
		s := envRef.ReplaceAllStringFunc(v.String(), func(m string) string {
			if m == "$$" {
				return "$"
			}
			name := m[2 : len(m)-1]
			val, ok := os.LookupEnv(name)
			if !ok {
				*errs = multierror.Append(*errs, fmt.Errorf("%s: environment variable %s is not set", path, name))
			}
			return val
		})
		v.SetString(s)
	}
}
