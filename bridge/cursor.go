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

// cursorStore keeps one cursor per extension. Writes are revision-checked:
// put succeeds only if the stored cursor is still the one of revision rev
// (0: none stored yet), so that a bridge that lost an extension to another
// replica cannot move its cursor; it fails with errCursorMoved otherwise.
type cursorStore interface {
	// get returns the cursor of the extension ext (stored under key), its
	// revision, and whether there was one.
	get(ctx context.Context, key, ext string) (c cursor, rev uint64, found bool, err error)
	// put stores c over revision rev and returns the new revision.
	put(ctx context.Context, key string, c cursor, rev uint64) (uint64, error)
}

// errCursorMoved is a cursor write refused because someone else wrote the
// cursor since it was read: another replica owns the extension now.
var errCursorMoved = errors.New("the cursor was written by someone else since it was read (another replica owns the extension?)")

// cursorKey names an extension's cursor: the PBX (hashed, since a host:port
// is not a valid key) and the extension number, escaped to the key alphabet.
func cursorKey(host, ext string) string {
	return hostKey(host) + "." + keyToken(ext)
}

// hostKey is the KV key token of a PBX: a hash of its host.
func hostKey(host string) string {
	h := sha256.Sum256([]byte(host))
	return hex.EncodeToString(h[:8])
}

// keyToken escapes s to the KV key alphabet: letters, digits, - and _
// stay, every other byte becomes =XX.
func keyToken(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
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

func (s kvCursors) get(ctx context.Context, key, ext string) (cursor, uint64, bool, error) {
	var c cursor
	var rev uint64
	found := false
	e, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return cursor{}, 0, false, fmt.Errorf("read cursor %s: %w", key, err)
	default:
		rev = e.Revision()
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return cursor{}, 0, false, fmt.Errorf("cursor %s is corrupt: %w", key, err)
		}
		found = true
	}
	last, ok, err := s.lastPublished(ctx, ext)
	if err != nil {
		return cursor{}, 0, false, err
	}
	if ok && (!found || last.ID > c.ID) {
		c, found = last, true
	}
	return c, rev, found, nil
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

func (s kvCursors) put(ctx context.Context, key string, c cursor, rev uint64) (uint64, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		rev, err = s.kv.Create(ctx, key, b)
	} else {
		rev, err = s.kv.Update(ctx, key, b, rev)
	}
	var ae *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence:
		return 0, fmt.Errorf("write cursor %s: %w", key, errCursorMoved)
	case err != nil:
		return 0, fmt.Errorf("write cursor %s: %w", key, err)
	}
	return rev, nil
}

// memCursors keeps cursors in memory: without JetStream they live as long
// as the process.
type memCursors struct {
	mu sync.Mutex
	m  map[string]revCursor
}

func (s *memCursors) get(_ context.Context, key, _ string) (cursor, uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[key]
	return c.cursor, c.rev, ok, nil
}

func (s *memCursors) put(_ context.Context, key string, c cursor, rev uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]revCursor)
	}
	if s.m[key].rev != rev {
		return 0, errCursorMoved
	}
	s.m[key] = revCursor{c, rev + 1}
	return rev + 1, nil
}

// revCursor is a cursor and its revision.
type revCursor struct {
	cursor
	rev uint64
}
