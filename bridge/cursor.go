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
	// get returns the cursor and whether there was one.
	get(ctx context.Context, key string) (cursor, bool, error)
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
type kvCursors struct{ kv jetstream.KeyValue }

func (s kvCursors) get(ctx context.Context, key string) (cursor, bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return cursor{}, false, nil
	}
	if err != nil {
		return cursor{}, false, fmt.Errorf("read cursor %s: %w", key, err)
	}
	var c cursor
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return cursor{}, false, fmt.Errorf("cursor %s is corrupt: %w", key, err)
	}
	return c, true, nil
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

func (s *memCursors) get(_ context.Context, key string) (cursor, bool, error) {
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
