package main

import (
	"context"
	"log/slog"
	"os"
	"reflect"
	"strings"

	"github.com/pbx-bridge/pbx-bridge/bridge"
)

// extensionApplier is what a reload needs of the bridge.
type extensionApplier interface {
	ApplyExtensions(creds []bridge.Credential) (bridge.ExtensionChanges, error)
}

// reloader applies the configuration file again on SIGHUP. Only the
// extensions change at run time; every other key a new file changes is
// named as needing a restart, and left as it runs.
type reloader struct {
	path string
	b    extensionApplier
	log  *slog.Logger
	// running is what the process runs: the file it started with, with
	// the extensions of the last reload that applied. The keys that need a
	// restart keep their startup values, so that each reload names them
	// again until the process is restarted.
	running *fileConfig
}

// run reloads on each signal of hup until ctx ends.
func (r *reloader) run(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload()
		}
	}
}

// reload re-reads and checks the file; a file with a problem changes
// nothing. It reports whether the extensions were applied.
func (r *reloader) reload() bool {
	r.log.Info("SIGHUP: reloading the configuration", "config", r.path)
	fc, err := loadConfig(r.path)
	if err != nil {
		r.log.Error("configuration not reloaded: the file has problems; nothing changed", "config", r.path, "problems", problems(err))
		return false
	}
	restart := changedKeys(r.running, fc)
	ch, err := r.b.ApplyExtensions(fc.credentials())
	if err != nil {
		// The bridge checks every credential before it changes anything;
		// what it did change before failing otherwise is reported.
		r.log.Error("configuration not reloaded: the extensions could not be applied", "config", r.path, "err", err,
			"added", ch.Added, "removed", ch.Removed, "secret_changed", ch.SecretChanged)
		return false
	}
	next := *r.running
	next.Extensions = fc.Extensions
	r.running = &next
	if len(ch.Added)+len(ch.Removed)+len(ch.SecretChanged) == 0 {
		r.log.Info("configuration reloaded: no change to the extensions", "config", r.path, "restart_needed", len(restart))
	} else {
		r.log.Info("configuration reloaded: extensions applied", "config", r.path,
			"added", ch.Added, "removed", ch.Removed, "secret_changed", ch.SecretChanged, "restart_needed", len(restart))
	}
	for _, key := range restart {
		r.log.Warn(key+" changed: needs a restart", "key", key)
	}
	return true
}

// changedKeys names, by their YAML keys, the values that differ between
// two configurations, the extensions aside (a reload applies those).
// Values are compared after defaults and ${VAR} expansion; an empty list
// equals a missing one.
func changedKeys(old, cur *fileConfig) []string {
	var keys []string
	var walk func(a, b reflect.Value, path string)
	walk = func(a, b reflect.Value, path string) {
		switch a.Kind() {
		case reflect.Struct:
			t := a.Type()
			for i := 0; i < t.NumField(); i++ {
				name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
				if path != "" {
					name = path + "." + name
				}
				if name == "extensions" {
					continue
				}
				walk(a.Field(i), b.Field(i), name)
			}
			return
		case reflect.Slice:
			if a.Len() == 0 && b.Len() == 0 {
				return
			}
		}
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			keys = append(keys, path)
		}
	}
	walk(reflect.ValueOf(*old), reflect.ValueOf(*cur), "")
	return keys
}
