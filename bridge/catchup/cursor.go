package catchup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Cursor is the newest CDR record published for an extension. Records are
// ordered by id, the PBX's sequence number.
type Cursor struct {
	ID        int    `json:"id"`
	UniqueID  string `json:"uniqueid,omitempty"`
	Timestamp int64  `json:"timestamp,omitempty"`
}

// Store keeps one Cursor per extension. Writes are revision-checked: Put
// succeeds only if the stored Cursor is still the one of revision rev (0:
// none stored yet), so that a bridge that lost an extension to another
// replica cannot move its cursor; it fails with ErrCursorMoved otherwise.
type Store interface {
	// Get returns the Cursor of the extension ext (stored under key), its
	// revision, and whether there was one.
	Get(ctx context.Context, key, ext string) (c Cursor, rev uint64, found bool, err error)
	// Put stores c over revision rev and returns the new revision.
	Put(ctx context.Context, key string, c Cursor, rev uint64) (uint64, error)
}

// ErrCursorMoved is a Cursor write refused because someone else wrote the
// Cursor since it was read: another replica owns the extension now.
var ErrCursorMoved = errors.New("the Cursor was written by someone else since it was read (another replica owns the extension?)")

// KVStore keeps cursors in a JetStream KV bucket, so they survive a
// restart of the bridge and follow the extension to another replica.
//
// The cursor is written after the stream acknowledged the record, so a
// crash (or a NATS outage) between the two leaves it one record behind. The
// stream itself knows better: Get also reads the extension's last
// cdr.created in the stream and takes whichever is newer, so that record is
// not published again, even after the duplicate window has passed.
type KVStore struct {
	KV     jetstream.KeyValue
	JS     jetstream.JetStream
	Stream string // the records stream
	// CDRCreated is the cdr.created subject of an extension.
	CDRCreated func(ext string) string
}

// Get implements Store.
func (s KVStore) Get(ctx context.Context, key, ext string) (Cursor, uint64, bool, error) {
	var c Cursor
	var rev uint64
	found := false
	e, err := s.KV.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return Cursor{}, 0, false, fmt.Errorf("read Cursor %s: %w", key, err)
	default:
		rev = e.Revision()
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return Cursor{}, 0, false, fmt.Errorf("cursor %s is corrupt: %w", key, err)
		}
		found = true
	}
	last, ok, err := s.lastPublished(ctx, ext)
	if err != nil {
		return Cursor{}, 0, false, err
	}
	if ok && (!found || last.ID > c.ID) {
		c, found = last, true
	}
	return c, rev, found, nil
}

// lastPublished reads the record of the extension's newest cdr.created in
// the stream.
func (s KVStore) lastPublished(ctx context.Context, ext string) (Cursor, bool, error) {
	st, err := s.JS.Stream(ctx, s.Stream)
	if err != nil {
		return Cursor{}, false, fmt.Errorf("stream %s: %w", s.Stream, err)
	}
	m, err := st.GetLastMsgForSubject(ctx, s.CDRCreated(ext))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Cursor{}, false, nil
	}
	if err != nil {
		return Cursor{}, false, fmt.Errorf("last cdr.created of %s: %w", ext, err)
	}
	var ev struct {
		Data struct {
			Record Cursor `json:"record"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return Cursor{}, false, fmt.Errorf("last cdr.created of %s is not an event: %w", ext, err)
	}
	return ev.Data.Record, true, nil
}

// Put implements Store.
func (s KVStore) Put(ctx context.Context, key string, c Cursor, rev uint64) (uint64, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		rev, err = s.KV.Create(ctx, key, b)
	} else {
		rev, err = s.KV.Update(ctx, key, b, rev)
	}
	var ae *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence:
		return 0, fmt.Errorf("write Cursor %s: %w", key, ErrCursorMoved)
	case err != nil:
		return 0, fmt.Errorf("write Cursor %s: %w", key, err)
	}
	return rev, nil
}

// MemStore keeps cursors in memory: without JetStream they live as long as
// the process.
type MemStore struct {
	mu sync.Mutex
	m  map[string]revCursor
}

// Get implements Store.
func (s *MemStore) Get(_ context.Context, key, _ string) (Cursor, uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[key]
	return c.Cursor, c.rev, ok, nil
}

// Put implements Store.
func (s *MemStore) Put(_ context.Context, key string, c Cursor, rev uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]revCursor)
	}
	if s.m[key].rev != rev {
		return 0, ErrCursorMoved
	}
	s.m[key] = revCursor{c, rev + 1}
	return rev + 1, nil
}

// revCursor is a Cursor and its revision.
type revCursor struct {
	Cursor
	rev uint64
}
