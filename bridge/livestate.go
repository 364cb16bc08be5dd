package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The tracker's saved state, in the cursor bucket. A PBX with a couple of
// thousand live calls makes the state larger than the NATS server's
// max_payload (about 390 bytes a call: 1 MiB by default), so it is kept in
// chunks under two alternating slots, and a manifest under the state's
// key names the slot that is whole:
//
//	live.<pbx-hash>          {"slot":"a","chunks":3,"size":...,"sha256":...}
//	live.<pbx-hash>.a.0 ...  the chunks of slot a
//
// A save writes the slot the manifest does not name, then the manifest: a
// crash in between leaves the manifest naming the previous state, whole.
// The keys are bounded (two slots of at most maxLiveChunks), so the bucket
// never fills with delete markers.

// maxLiveChunks bounds a state's chunks: 64 of the default max_payload is
// 64 MiB, well above what the tracker's MaxCalls lets the state grow to.
const maxLiveChunks = 64

// liveSaveEvery is how often, at most, the state is saved while frames
// come: a save is a few KV writes of the whole state, and a PBX with
// 1,000 calls a second sends thousands of frames a second. A holder that
// dies leaves the transitions of its last second unsaved; the next one
// reads their events back from the signals stream (livereplay.go).
const liveSaveEvery = time.Second

// errUnpublished is a save given up because the events before it were not
// published: the state would run ahead of the stream.
var errUnpublished = errors.New("the events before the state were not published")

// liveManifest is the value of the state's key.
type liveManifest struct {
	Slot   string    `json:"slot"`
	Chunks int       `json:"chunks"`
	Size   int       `json:"size"`
	SHA256 string    `json:"sha256"`
	At     time.Time `json:"at"`
}

// liveState reads and writes one PBX's tracker state in the bucket.
type liveState struct {
	kv    jetstream.KeyValue
	key   string
	chunk int            // bytes per chunk: below the server's max_payload
	slot  string         // the slot the manifest names ("" before any)
	count map[string]int // chunks this process wrote in each slot
}

func newLiveState(kv jetstream.KeyValue, key string, maxPayload int64) *liveState {
	// Headroom for the message's headers and subject.
	return &liveState{kv: kv, key: key, chunk: int(max(maxPayload-4096, 1024)), count: map[string]int{}}
}

func (s *liveState) chunkKey(slot string, i int) string {
	return s.key + "." + slot + "." + strconv.Itoa(i)
}

// load returns the saved state (nil if there is none) and when it was
// saved. A manifest whose
// chunks do not add up (missing, another size or hash: two holders wrote
// at once) is an error, as is one that is not a manifest.
func (s *liveState) load(ctx context.Context) ([]byte, time.Time, error) {
	e, err := s.kv.Get(ctx, s.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	var m liveManifest
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return nil, time.Time{}, fmt.Errorf("%s is not a manifest: %w", s.key, err)
	}
	if (m.Slot != "a" && m.Slot != "b") || m.Chunks < 1 || m.Chunks > maxLiveChunks || m.Size < 0 {
		return nil, time.Time{}, fmt.Errorf("%s is not a manifest (slot %q, %d chunks, size %d)", s.key, m.Slot, m.Chunks, m.Size)
	}
	data := make([]byte, 0, m.Size)
	for i := range m.Chunks {
		c, err := s.kv.Get(ctx, s.chunkKey(m.Slot, i))
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("chunk %d of %d: %w", i, m.Chunks, err)
		}
		data = append(data, c.Value()...)
	}
	if sum := sha256.Sum256(data); len(data) != m.Size || hex.EncodeToString(sum[:]) != m.SHA256 {
		return nil, time.Time{}, fmt.Errorf("the chunks of slot %s do not make the state the manifest names (%d bytes, want %d)", m.Slot, len(data), m.Size)
	}
	s.slot = m.Slot
	return data, m.At, nil
}

// save writes data to the other slot, then the manifest, then deletes the
// chunks of that slot this process wrote before beyond the new ones.
func (s *liveState) save(ctx context.Context, data []byte) error {
	n := max(1, (len(data)+s.chunk-1)/s.chunk)
	if n > maxLiveChunks {
		return fmt.Errorf("the state is %d bytes, more than %d chunks of %d", len(data), maxLiveChunks, s.chunk)
	}
	slot := "a"
	if s.slot == "a" {
		slot = "b"
	}
	for i := range n {
		part := data[i*s.chunk : min(len(data), (i+1)*s.chunk)]
		if _, err := s.kv.Put(ctx, s.chunkKey(slot, i), part); err != nil {
			return fmt.Errorf("chunk %d of %d: %w", i, n, err)
		}
	}
	sum := sha256.Sum256(data)
	m, _ := json.Marshal(liveManifest{Slot: slot, Chunks: n, Size: len(data), SHA256: hex.EncodeToString(sum[:]), At: time.Now().UTC()})
	if _, err := s.kv.Put(ctx, s.key, m); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	s.slot = slot
	for i := n; i < s.count[slot]; i++ {
		_ = s.kv.Delete(ctx, s.chunkKey(slot, i)) // a leftover is never read: the manifest counts
	}
	s.count[slot] = n
	return nil
}
