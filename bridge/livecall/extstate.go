package livecall

import (
	"strconv"
	"strings"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx/openapi"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// extInfo is what the tracker knows of an extension outside calls: the
// last status of each of 30009, 30008 and 30007 (per kind), and how many
// changes of each it saw.
type extInfo struct {
	presence   status
	callStatus status
	reg        map[string]*regStatus // by kind
}

type status struct {
	value string
	seq   int
}

type regStatus struct {
	status
	ip string
}

// ext returns the state of ext, made if needed; nil (counted) when ext is
// no safe token or MaxExtensions are tracked. values are the strings the
// change would keep, each within MaxFieldBytes.
func (t *Tracker) ext(ext string, values ...string) *extInfo {
	if !fits(values...) {
		t.count(ReasonBadEvent)
		return nil
	}
	if !safeToken(ext) {
		t.count(ReasonUnsafeExtension)
		return nil
	}
	x := t.exts[ext]
	if x == nil {
		if len(t.exts) >= t.cfg.MaxExtensions {
			t.count(ReasonExtensionsFull)
			return nil
		}
		x = &extInfo{reg: map[string]*regStatus{}}
		t.exts[ext] = x
	}
	return x
}

// change moves st to value and reports whether it changed.
func (st *status) change(value string) (previous string, changed bool) {
	if st.value == value {
		return "", false
	}
	previous = st.value
	st.value = value
	st.seq++
	return previous, true
}

// extEvent builds the event of an extension-level change; parts identify
// the fact beside the type, the PBX and the extension.
func (t *Tracker) extEvent(ext, suffix, typ string, now time.Time, data any, parts ...string) []Event {
	if !t.served(ext) {
		return nil
	}
	id := schema.EventID(append([]string{typ, t.cfg.PBX, ext}, parts...)...)
	return []Event{{Ext: ext, Suffix: suffix, Type: typ, ID: id, Time: now, Data: data}}
}

func (t *Tracker) observePresence(d *openapi.PresenceChange, now time.Time) []Event {
	if d.Extension == "" || d.Status == "" {
		t.count(ReasonBadEvent)
		return nil
	}
	x := t.ext(d.Extension, d.Status)
	if x == nil {
		return nil
	}
	prev, changed := x.presence.change(d.Status)
	if !changed {
		return nil
	}
	data := schema.PresenceChanged{PBX: t.cfg.PBX, ExtNum: d.Extension, Status: d.Status, Previous: prev, Seq: x.presence.seq}
	return t.extEvent(d.Extension, "presence.changed", schema.TypePresenceChanged, now, data, d.Status, strconv.Itoa(x.presence.seq))
}

func (t *Tracker) observeCallStatus(d *openapi.ExtensionCallStatus, now time.Time) []Event {
	if d.Extension == "" || d.Status == "" {
		t.count(ReasonBadEvent)
		return nil
	}
	x := t.ext(d.Extension, d.Status)
	if x == nil {
		return nil
	}
	prev, changed := x.callStatus.change(d.Status)
	if !changed {
		return nil
	}
	data := schema.CallStatusChanged{PBX: t.cfg.PBX, ExtNum: d.Extension, Status: d.Status, Previous: prev, Seq: x.callStatus.seq}
	return t.extEvent(d.Extension, "call_status.changed", schema.TypeCallStatusChanged, now, data, d.Status, strconv.Itoa(x.callStatus.seq))
}

// observeRegistration follows each kind of endpoint on its own: a phone
// registering says nothing of the mobile app. A new address with the same
// status is a change too (the endpoint registered again from elsewhere).
func (t *Tracker) observeRegistration(d *openapi.RegistrationChange, now time.Time) []Event {
	if d.Extension == "" || d.Status == "" {
		t.count(ReasonBadEvent)
		return nil
	}
	x := t.ext(d.Extension, d.Status, d.Kind, d.RegisteredIP)
	if x == nil {
		return nil
	}
	r := x.reg[d.Kind]
	if r == nil {
		if len(x.reg) >= MaxKinds {
			t.count(ReasonExtensionsFull)
			return nil
		}
		r = &regStatus{}
		x.reg[d.Kind] = r
	}
	if r.value == d.Status && r.ip == d.RegisteredIP {
		return nil
	}
	prev := r.value
	r.value, r.ip = d.Status, d.RegisteredIP
	r.seq++
	data := schema.RegistrationChanged{PBX: t.cfg.PBX, ExtNum: d.Extension, Kind: d.Kind, Status: d.Status,
		RegisteredIP: d.RegisteredIP, Previous: prev, Seq: r.seq}
	return t.extEvent(d.Extension, "registration.changed", schema.TypeRegistrationChanged, now, data,
		d.Kind, d.Status, d.RegisteredIP, strconv.Itoa(r.seq))
}

// observeCDR publishes the record of an ended call, and ends the call if
// it is still tracked (its last 30011 lost, or coming late).
func (t *Tracker) observeCDR(d *openapi.NewCDR, now time.Time) []Event {
	if d.CallID == "" || !fits(d.CallID) {
		t.count(ReasonBadEvent)
		return nil
	}
	var out []Event
	if c := t.calls[d.CallID]; c != nil {
		out = t.endCall(c, now, schema.CauseCallEnded)
	} else if !t.ended.has(d.CallID) {
		t.ended.add(d.CallID, now)
	}
	data := schema.CDREnded{
		PBX: t.cfg.PBX, CallID: d.CallID, TimeStart: d.TimeStart, CallFrom: d.CallFrom, CallTo: d.CallTo,
		CallDuration: d.CallDuration, TalkDuration: d.TalkDuration, SrcTrunkName: d.SrcTrunkName,
		DstTrunkName: d.DstTrunkName, Status: d.Status, Type: d.Type, Recording: d.Recording,
		DIDNumber: d.DIDNumber, AgentRingTime: d.AgentRingTime,
	}
	switch dir := d.CallType(); dir {
	case schema.DirectionInbound, schema.DirectionOutbound, schema.DirectionInternal:
		data.Direction = dir
	}
	return append(out, Event{Ext: PBXToken, Suffix: "cdr.ended", Type: schema.TypeCDREnded, Time: now, Data: data,
		ID: schema.EventID(schema.TypeCDREnded, t.cfg.PBX, d.CallID)})
}

var systemLevels = map[openapi.EventType]string{
	openapi.EventSystemInfo:    schema.SystemLevelInfo,
	openapi.EventSystemWarning: schema.SystemLevelWarning,
	openapi.EventSystemAlert:   schema.SystemLevelAlert,
}

// observeSystem publishes a system event. Its id is its content: the PBX
// numbers none, so two identical events in the same second are one.
func (t *Tracker) observeSystem(typ openapi.EventType, d *openapi.SystemEvent, now time.Time) []Event {
	level, ok := systemLevels[typ]
	if !ok || d.EventName == "" {
		t.count(ReasonBadEvent)
		return nil
	}
	st, _ := schema.SystemEventType(level)
	data := schema.SystemEvent{PBX: t.cfg.PBX, Level: level, EventName: d.EventName, EventType: d.EventType,
		EventLevel: d.EventLevel, EventContent: d.EventContent, CreateTime: d.CreateTime}
	id := schema.EventID(st, t.cfg.PBX, d.EventName, d.EventType, d.EventLevel, d.EventContent, strings.TrimSpace(d.CreateTime))
	return []Event{{Ext: PBXToken, Suffix: "system." + level, Type: st, ID: id, Time: now, Data: data}}
}
