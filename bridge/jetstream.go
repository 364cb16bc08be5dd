package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pbx-bridge/pbx-bridge/bridge/catchup"
)

// configError is a JetStream setup problem that retrying will not fix.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// setupJetStream makes (or, with CheckOnly, checks) the event streams and
// opens the cursor bucket.
func (b *Bridge) setupJetStream(ctx context.Context) (jetstream.JetStream, catchup.Store, error) {
	jc := b.cfg.JetStream
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	if jc.CheckOnly {
		if err := b.checkStream(ctx, js); err != nil {
			return nil, nil, err
		}
	} else if err := b.createStream(ctx, js); err != nil {
		return nil, nil, err
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
	return js, catchup.KVStore{KV: kv, Stream: jc.Stream, JS: js, CDRCreated: b.subjects.cdrCreated}, nil
}

// streamSpec is one of the bridge's two streams: the records (bounded by
// age only) and the signals (bounded by size and per subject too).
type streamSpec struct {
	config  jetstream.StreamConfig
	filters []string
}

func (b *Bridge) streams() []streamSpec {
	jc := b.cfg.JetStream
	records := jetstream.StreamConfig{
		Name:        jc.Stream,
		Description: "pbx-bridge records: cdr.created, call.missed (" + b.cfg.Prefix + ")",
		Subjects:    b.subjects.recordFilters(),
		Storage:     jetstream.FileStorage,
		Replicas:    jc.Replicas,
		MaxAge:      jc.MaxAge,
		Duplicates:  jc.DuplicateWindow,
	}
	sig := jc.Signals
	signals := jetstream.StreamConfig{
		Name:              sig.Stream,
		Description:       "pbx-bridge signals: cdr.changed, session.*, runtime.error, notify.* (" + b.cfg.Prefix + ")",
		Subjects:          b.subjects.signalFilters(),
		Storage:           jetstream.FileStorage,
		Replicas:          jc.Replicas,
		MaxAge:            sig.MaxAge,
		MaxBytes:          sig.MaxBytes,
		MaxMsgsPerSubject: sig.MaxMsgsPerSubject,
		Discard:           jetstream.DiscardOld,
		Duplicates:        min(jc.DuplicateWindow, sig.MaxAge),
	}
	return []streamSpec{{records, records.Subjects}, {signals, signals.Subjects}}
}

func (b *Bridge) createStream(ctx context.Context, js jetstream.JetStream) error {
	for _, s := range b.streams() {
		if _, err := js.CreateOrUpdateStream(ctx, s.config); err != nil {
			return fmt.Errorf("jetstream stream %s: %w", s.config.Name, err)
		}
	}
	return nil
}

// checkStream verifies streams someone else manages: they must capture
// every event subject and none of the request/reply subjects (a stream over
// those would store every request and answer it with a PubAck racing the
// reply).
func (b *Bridge) checkStream(ctx context.Context, js jetstream.JetStream) error {
	jc := b.cfg.JetStream
	for _, spec := range b.streams() {
		name := spec.config.Name
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return &configError{fmt.Errorf("jetstream stream %s does not exist (jetstream.create_stream is false)", name)}
		}
		if err != nil {
			return fmt.Errorf("jetstream stream %s: %w", name, err)
		}
		cfg := s.CachedInfo().Config
		if missing := uncovered(spec.filters, cfg.Subjects); len(missing) > 0 {
			return &configError{fmt.Errorf("jetstream stream %s does not capture %s", name, strings.Join(missing, ", "))}
		}
		for _, req := range b.subjects.requestFilters() {
			for _, subj := range cfg.Subjects {
				if overlaps(req, subj) {
					return &configError{fmt.Errorf("jetstream stream %s captures the request subjects %s (through %s): requests would be stored and answered by PubAcks", name, req, subj)}
				}
			}
		}
		if cfg.Duplicates < spec.config.Duplicates {
			b.cfg.Logger.Warn("the stream's duplicate window is shorter than configured: replays after a longer outage are not de-duplicated",
				"stream", name, "stream_duplicate_window", cfg.Duplicates, "jetstream.duplicate_window", jc.DuplicateWindow)
		}
	}
	return nil
}

// ensureStream re-creates the streams if one vanished (deleted by an
// operator, or lost with a server), unless someone else manages them.
func (b *Bridge) ensureStream(ctx context.Context) error {
	if b.cfg.JetStream.CheckOnly || b.js == nil {
		return nil
	}
	for _, s := range b.streams() {
		_, err := b.js.Stream(ctx, s.config.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			b.cfg.Logger.Warn("an event stream is gone; creating it again", "stream", s.config.Name)
			_, err = b.js.CreateOrUpdateStream(ctx, s.config)
		}
		if err != nil {
			return fmt.Errorf("jetstream stream %s: %w", s.config.Name, err)
		}
	}
	return nil
}

// overlaps reports whether some subject matches both filters.
func overlaps(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		if at[i] == ">" || bt[i] == ">" {
			return true
		}
		if at[i] != "*" && bt[i] != "*" && at[i] != bt[i] {
			return false
		}
	}
	return len(at) == len(bt)
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
