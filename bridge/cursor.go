package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// cursor is the newest CDR record published for an extension. Records are
// ordered by id, the PBX's sequence number.
type cursor struct {
	ID        int    `json:"id"`
	UniqueID  string `json:"uniqueid,omitempty"`
	Timestamp int64  `json:"timestamp,omitempty"`
}

// cursorStore keeps one cursor per extension.
type cursorStore interface {
	// get returns the cursor of the extension ext (stored under key) and
	// whether there was one.
	get(ctx context.Context, key, ext string) (cursor, bool, error)
	put(ctx context.Context, key string, c cursor) error
}

// cursorKey names an extension's cursor: the PBX (hashed, since a host:port
// is not a valid key) and the extension number, escaped to the key alphabet.
func cursorKey(host, ext string) string {
	h := sha256.Sum256([]byte(host))
	var b strings.Builder
	b.WriteString(hex.EncodeToString(h[:8]))
	b.WriteByte('.')
	for i := 0; i < len(ext); i++ {
		c := ext[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

// kvCursors keeps cursors in a JetStream KV bucket, so they survive a
// restart of the bridge and follow the extension to another replica.
//
// The cursor is written after the stream acknowledged the record, so a
// crash (or a NATS outage) between the two leaves it one record behind. The
// stream itself knows better: get also reads the extension's last
// cdr.created in the stream and takes whichever is newer, so that record is
// not published again, even after the duplicate window has passed.
type kvCursors struct {
	kv       jetstream.KeyValue
	js       jetstream.JetStream
	stream   string
	subjects subjects
}

func (s kvCursors) get(ctx context.Context, key, ext string) (cursor, bool, error) {
	var c cursor
	found := false
	e, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return cursor{}, false, fmt.Errorf("read cursor %s: %w", key, err)
	default:
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return cursor{}, false, fmt.Errorf("cursor %s is corrupt: %w", key, err)
		}
		found = true
	}
	last, ok, err := s.lastPublished(ctx, ext)
	if err != nil {
		return cursor{}, false, err
	}
	if ok && (!found || last.ID > c.ID) {
		c, found = last, true
	}
	return c, found, nil
}

// lastPublished reads the record of the extension's newest cdr.created in
// the stream.
func (s kvCursors) lastPublished(ctx context.Context, ext string) (cursor, bool, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return cursor{}, false, fmt.Errorf("stream %s: %w", s.stream, err)
	}
	m, err := st.GetLastMsgForSubject(ctx, s.subjects.cdrCreated(ext))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return cursor{}, false, nil
	}
	if err != nil {
		return cursor{}, false, fmt.Errorf("last cdr.created of %s: %w", ext, err)
	}
	var ev struct {
		Data struct {
			Record cursor `json:"record"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return cursor{}, false, fmt.Errorf("last cdr.created of %s is not an event: %w", ext, err)
	}
	return ev.Data.Record, true, nil
}

func (s kvCursors) put(ctx context.Context, key string, c cursor) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("write cursor %s: %w", key, err)
	}
	return nil
}

// memCursors keeps cursors in memory: without JetStream they live as long
// as the process.
type memCursors struct {
	mu sync.Mutex
	m  map[string]cursor
}

func (s *memCursors) get(_ context.Context, key, _ string) (cursor, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[key]
	return c, ok, nil
}

func (s *memCursors) put(_ context.Context, key string, c cursor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]cursor)
	}
	s.m[key] = c
	return nil
}
