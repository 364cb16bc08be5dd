package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// setupJetStream makes (or, with CheckOnly, checks) the event stream and
// opens the cursor bucket.
func (b *Bridge) setupJetStream(ctx context.Context) (jetstream.JetStream, cursorStore, error) {
	jc := b.cfg.JetStream
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	filters := b.subjects.eventFilters()
	if jc.CheckOnly {
		s, err := js.Stream(ctx, jc.Stream)
		if err != nil {
			return nil, nil, fmt.Errorf("jetstream stream %s: %w", jc.Stream, err)
		}
		if missing := uncovered(filters, s.CachedInfo().Config.Subjects); len(missing) > 0 {
			return nil, nil, fmt.Errorf("jetstream stream %s does not capture %s", jc.Stream, strings.Join(missing, ", "))
		}
	} else {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        jc.Stream,
			Description: "pbx-bridge events (" + b.cfg.Prefix + ")",
			Subjects:    filters,
			Storage:     jetstream.FileStorage,
			Replicas:    jc.Replicas,
			MaxAge:      jc.MaxAge,
			Duplicates:  jc.DuplicateWindow,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("jetstream stream %s: %w", jc.Stream, err)
		}
	}
	kv, err := js.KeyValue(ctx, jc.CursorBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      jc.CursorBucket,
			Description: "pbx-bridge: newest CDR published per extension",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    jc.Replicas,
		})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream cursor bucket %s: %w", jc.CursorBucket, err)
	}
	return js, kvCursors{kv: kv}, nil
}

// uncovered returns the filters that none of the stream's subjects
// captures entirely.
func uncovered(filters, streamSubjects []string) []string {
	var out []string
	for _, f := range filters {
		covered := false
		for _, s := range streamSubjects {
			if subsetOf(f, s) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, f)
		}
	}
	return out
}

// subsetOf reports whether every subject matching filter f also matches s.
func subsetOf(f, s string) bool {
	ft, st := strings.Split(f, "."), strings.Split(s, ".")
	for i, t := range st {
		if t == ">" {
			return len(ft) > i
		}
		if i >= len(ft) {
			return false
		}
		switch {
		case t == "*":
			if ft[i] == ">" {
				return false
			}
		case ft[i] != t:
			return false
		}
	}
	return len(ft) == len(st)
}
