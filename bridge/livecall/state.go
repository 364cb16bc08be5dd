package livecall

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
)

// stateVersion is the version of Export's document; Import takes no other.
const stateVersion = 1

// stateDoc is a tracker's state as Export writes it.
type stateDoc struct {
	Version int        `json:"version"`
	PBX     string     `json:"pbx"`
	Calls   []callDoc  `json:"calls"`
	Ended   []endedDoc `json:"ended"`
	Exts    []extDoc   `json:"extensions"`
}

type callDoc struct {
	CallID  string       `json:"call_id"`
	Seen    int64        `json:"seen_ms"` // Unix milliseconds
	Members []memberDoc  `json:"members"`
	Exts    []extCallDoc `json:"exts"`
}

type memberDoc struct {
	Kind     string `json:"kind"`
	Number   string `json:"number,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	Trunk    string `json:"trunk_name,omitempty"`
	Channel  string `json:"channel_id"`
	Status   string `json:"member_status"`
	CallPath string `json:"call_path,omitempty"`
	Phase    string `json:"phase"`
}

type extCallDoc struct {
	Ext   string `json:"ext"`
	Phase string `json:"phase"`
	Seq   int    `json:"seq"`
}

type endedDoc struct {
	CallID string `json:"call_id"`
	At     int64  `json:"at_ms"`
}

type extDoc struct {
	Ext           string   `json:"ext"`
	Presence      string   `json:"presence,omitempty"`
	PresenceSeq   int      `json:"presence_seq,omitempty"`
	CallStatus    string   `json:"call_status,omitempty"`
	CallStatusSeq int      `json:"call_status_seq,omitempty"`
	Reg           []regDoc `json:"registrations,omitempty"`
}

type regDoc struct {
	Kind   string `json:"kind"`
	Status string `json:"status"`
	IP     string `json:"ip,omitempty"`
	Seq    int    `json:"seq"`
}

// Export returns the tracker's state as JSON, for Import by the tracker
// that takes over (a replica after a failover, the next run): with it, the
// same frames give the same events with the same ids. Save it after
// publishing what Observe returned. Its size grows with the live calls
// and the extensions (about 390 bytes for a two-party call, 175 for an
// extension: TestStateSize); see docs/live-calls.md.
func (t *Tracker) Export() ([]byte, error) { return t.Snapshot().JSON() }

// Snapshot is a tracker's state at one moment, not yet encoded.
type Snapshot struct{ doc stateDoc }

// JSON encodes the snapshot as Export does.
func (s *Snapshot) JSON() ([]byte, error) { return json.Marshal(s.doc) }

// Snapshot copies the tracker's state, for encoding later (JSON) outside
// the tracker's lock: a caller that must hold Observe back while it takes
// the state holds it only for the copy, not for the encoding (a few
// milliseconds at a thousand live calls).
func (t *Tracker) Snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	doc := stateDoc{Version: stateVersion, PBX: t.cfg.PBX, Calls: []callDoc{}, Ended: []endedDoc{}, Exts: []extDoc{}}
	for _, id := range sortedKeys(t.calls) {
		c := t.calls[id]
		cd := callDoc{CallID: id, Seen: c.seen.UnixMilli()}
		for _, m := range c.members {
			cd.Members = append(cd.Members, memberDoc{Kind: string(m.Kind), Number: m.Number, From: m.From, To: m.To,
				Trunk: m.TrunkName, Channel: m.ChannelID, Status: string(m.Status), CallPath: m.CallPath, Phase: m.phase.String()})
		}
		for _, ext := range sortedKeys(c.exts) {
			es := c.exts[ext]
			cd.Exts = append(cd.Exts, extCallDoc{Ext: ext, Phase: es.phase.String(), Seq: es.seq})
		}
		doc.Calls = append(doc.Calls, cd)
	}
	for _, e := range t.ended.live() {
		doc.Ended = append(doc.Ended, endedDoc{CallID: e.id, At: e.at.UnixMilli()})
	}
	for _, ext := range sortedKeys(t.exts) {
		x := t.exts[ext]
		xd := extDoc{Ext: ext, Presence: x.presence.value, PresenceSeq: x.presence.seq,
			CallStatus: x.callStatus.value, CallStatusSeq: x.callStatus.seq}
		for _, kind := range sortedKeys(x.reg) {
			r := x.reg[kind]
			xd.Reg = append(xd.Reg, regDoc{Kind: kind, Status: r.value, IP: r.ip, Seq: r.seq})
		}
		doc.Exts = append(doc.Exts, xd)
	}
	return &Snapshot{doc: doc}
}

// Import replaces the tracker's state with one Export wrote, of the same
// PBX. A document that is not one (malformed, another version or PBX, a
// call or member that could not have been tracked) is refused whole and
// the state left as it was. Beyond MaxCalls the calls seen last are kept
// (ReasonCallsFull counts the rest), beyond MaxExtensions the first by
// number (ReasonExtensionsFull).
func (t *Tracker) Import(data []byte) error {
	var doc stateDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return errorf("state is not a tracker's state: %v", err)
	}
	switch {
	case doc.Version != stateVersion:
		return errorf("state version %d, want %d", doc.Version, stateVersion)
	case doc.PBX != t.cfg.PBX:
		return errorf("state of PBX %q, this tracker's is %q", doc.PBX, t.cfg.PBX)
	}
	calls := make(map[string]*call, len(doc.Calls))
	for _, cd := range doc.Calls {
		c, err := importCall(cd)
		if err != nil {
			return err
		}
		if calls[c.id] != nil {
			return errorf("state has call %q twice", c.id)
		}
		calls[c.id] = c
	}
	exts := make(map[string]*extInfo, len(doc.Exts))
	for _, xd := range doc.Exts {
		x, err := importExt(xd)
		if err != nil {
			return err
		}
		if exts[xd.Ext] != nil {
			return errorf("state has extension %q twice", xd.Ext)
		}
		exts[xd.Ext] = x
	}
	for _, e := range doc.Ended {
		if e.CallID == "" || !fits(e.CallID) {
			return errorf("state has an ended call without id")
		}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.reset()
	t.calls = keepNewest(calls, t.cfg.MaxCalls, func(n int) { t.countN(ReasonCallsFull, n) })
	for _, c := range t.calls {
		t.channels += len(c.members)
	}
	for i, ext := range sortedKeys(exts) {
		if i >= t.cfg.MaxExtensions {
			t.countN(ReasonExtensionsFull, len(exts)-i)
			break
		}
		t.exts[ext] = exts[ext]
	}
	slices.SortStableFunc(doc.Ended, func(a, b endedDoc) int { return cmp.Compare(a.At, b.At) })
	for _, e := range doc.Ended {
		t.ended.add(e.CallID, time.UnixMilli(e.At))
	}
	t.ended.prune(t.cfg.Now().Add(-t.cfg.EndedTTL))
	return nil
}

func importCall(cd callDoc) (*call, error) {
	if cd.CallID == "" || !fits(cd.CallID) || len(cd.Members) == 0 || len(cd.Members) > MaxMembers {
		return nil, errorf("state has a call %q without id or with %d members", cd.CallID, len(cd.Members))
	}
	c := &call{id: cd.CallID, seen: time.UnixMilli(cd.Seen), exts: map[string]*extCall{}}
	for _, md := range cd.Members {
		m := &member{CallMember: openapi.CallMember{Kind: openapi.MemberKind(md.Kind), Number: md.Number, From: md.From, To: md.To,
			TrunkName: md.Trunk, ChannelID: md.Channel, Status: openapi.MemberStatus(md.Status), CallPath: md.CallPath}}
		p, ok := parsePhase(md.Phase)
		if !ok || !usable(m.CallMember) || c.member(m.ChannelID) != nil {
			return nil, errorf("state has an unusable or repeated member %q in call %q", md.Channel, cd.CallID)
		}
		m.phase = p
		c.members = append(c.members, m)
	}
	for _, ed := range cd.Exts {
		p, ok := parsePhase(ed.Phase)
		if !ok || ed.Ext == "" || ed.Seq < 0 || c.exts[ed.Ext] != nil {
			return nil, errorf("state has a bad extension %q in call %q", ed.Ext, cd.CallID)
		}
		c.exts[ed.Ext] = &extCall{phase: p, seq: ed.Seq}
	}
	return c, nil
}

func importExt(xd extDoc) (*extInfo, error) {
	if !safeToken(xd.Ext) || !fits(xd.Presence, xd.CallStatus) || xd.PresenceSeq < 0 || xd.CallStatusSeq < 0 || len(xd.Reg) > MaxKinds {
		return nil, errorf("state has a bad extension %q", xd.Ext)
	}
	x := &extInfo{presence: status{xd.Presence, xd.PresenceSeq}, callStatus: status{xd.CallStatus, xd.CallStatusSeq},
		reg: map[string]*regStatus{}}
	for _, r := range xd.Reg {
		if r.Seq < 0 || x.reg[r.Kind] != nil || !fits(r.Kind, r.Status, r.IP) {
			return nil, errorf("state has a bad registration %q of extension %q", r.Kind, xd.Ext)
		}
		x.reg[r.Kind] = &regStatus{status: status{r.Status, r.Seq}, ip: r.IP}
	}
	return x, nil
}

// keepNewest returns the n calls seen last, and reports how many it left
// out.
func keepNewest(calls map[string]*call, n int, dropped func(int)) map[string]*call {
	if len(calls) <= n {
		return calls
	}
	all := make([]*call, 0, len(calls))
	for _, c := range calls {
		all = append(all, c)
	}
	slices.SortFunc(all, func(a, b *call) int { return cmp.Or(b.seen.Compare(a.seen), cmp.Compare(a.id, b.id)) })
	out := make(map[string]*call, n)
	for _, c := range all[:n] {
		out[c.id] = c
	}
	dropped(len(all) - n)
	return out
}

// Call returns the tracked call with the id as last seen (every channel,
// hung-up ones included), and whether it is tracked.
func (t *Tracker) Call(callID string) (openapi.CallState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.calls[callID]
	if c == nil {
		return openapi.CallState{}, false
	}
	return c.snapshot(), true
}

// CallOfChannel returns the tracked call that has the channel, as Call
// does.
func (t *Tracker) CallOfChannel(channelID string) (openapi.CallState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range sortedKeys(t.calls) {
		if c := t.calls[id]; c.member(channelID) != nil {
			return c.snapshot(), true
		}
	}
	return openapi.CallState{}, false
}
