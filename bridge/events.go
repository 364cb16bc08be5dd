package bridge

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// notifyNames names the notification types on their subjects
// (<prefix>.<ext>.notify.<name>). package pbx drops a type outside the
// reference's table (pbx.DropUnknownType), so "type_<number>" is only a
// fallback for a type added there before it is named here.
var notifyNames = map[int]string{
	pbx.TypeLogin:             "login",
	pbx.TypeExtensionDeleted:  "extension_deleted",
	pbx.TypeRecordFeatureCode: "record_feature_code",
	pbx.TypeReLogin:           "relogin",
	pbx.TypeDesktopClient:     "desktop_client",
	pbx.TypeWebClient:         "web_client",
	pbx.TypeRecordPermission:  "record_permission",
	pbx.TypeRecordStatus:      "record_status",
	pbx.TypeCDRChanged:        "cdr_changed",
	pbx.TypeLicense:           "license",
	pbx.TypeNATFQDN:           "nat_fqdn",
	pbx.TypeSIPRegistration:   "sip_registration",
	pbx.TypeInternalClient:    "internal_client",
	pbx.TypeHotStandby:        "hot_standby",
	pbx.TypeSDKPlan:           "sdk_plan",
	pbx.TypeReLogin2:          "relogin_required",
}

func notifyName(typ int) string {
	if n, ok := notifyNames[typ]; ok {
		return n
	}
	return "type_" + strconv.Itoa(typ)
}

// outEvent is one event ready to publish: its subject, id (also the
// JetStream Nats-Msg-Id) and encoded CloudEvents envelope.
type outEvent struct {
	subject string
	id      string
	typ     string
	body    []byte
	// smaller, if set, builds the same event with its bulk replaced by a
	// marker, for a body larger than the NATS server takes.
	smaller func() (outEvent, error)
}

// wireSize is what the event weighs against the server's max_payload: the
// body plus the headers eventMsg sets, as the client encodes them.
func (ev outEvent) wireSize() int {
	const status = len("NATS/1.0\r\n") + len("\r\n")
	h := status
	for k, v := range map[string]string{jetstream.MsgIDHeader: ev.id, "Content-Type": cloudEventsContentType, "Ce-Type": ev.typ} {
		h += len(k) + len(": ") + len(v) + len("\r\n")
	}
	return len(ev.body) + h
}

// eventFactory builds the envelopes of one extension's events.
type eventFactory struct {
	subjects subjects
	host     string // the PBX host[:port]
	source   string
	username string
}

func newEventFactory(s subjects, host, username string) eventFactory {
	return eventFactory{subjects: s, host: host, source: "pbx-bridge://" + host + "/" + username, username: username}
}

func (f eventFactory) ref(ext pbx.Extension) schema.ExtensionRef {
	num := ext.Number
	if num == "" {
		num = f.username
	}
	return schema.ExtensionRef{Number: num, ID: ext.ID, Name: ext.Name}
}

func (f eventFactory) build(subject, typ, id string, t time.Time, data any) (outEvent, error) {
	ev, err := schema.New(typ, f.source, f.username, id, t, data)
	if err != nil {
		return outEvent{}, err
	}
	body, err := schema.Marshal(ev)
	if err != nil {
		return outEvent{}, err
	}
	return outEvent{subject: subject, id: id, typ: typ, body: body}, nil
}

// cdrChanged maps a 20049 notification. Its id is derived from the
// notification's content, so a re-sent notification is recognisable.
func (f eventFactory) cdrChanged(ext pbx.Extension, n *pbx.CDRChanged, now time.Time) (outEvent, error) {
	pc := n.PersonalCDR
	id := schema.EventID(f.host, f.username, "cdr.changed", n.ExtNum, pc.Date, pc.Time,
		strconv.FormatInt(pc.Timestamp, 10), pc.Number, strconv.Itoa(pc.TalkDuration))
	data := schema.CDRChanged{
		Extension: f.ref(ext),
		PBX:       f.host,
		ExtNum:    n.ExtNum,
		PersonalCDR: schema.PersonalCDR{
			Date: pc.Date, Time: pc.Time, Timestamp: pc.Timestamp, Number: pc.Number, TalkDuration: pc.TalkDuration,
		},
	}
	return f.build(f.subjects.cdrChanged(f.username), schema.TypeCDRChanged, id, now, data)
}

// notify maps any other notification. A socket frame carries no id of its
// own, so the receive time is part of the id.
func (f eventFactory) notify(ext pbx.Extension, n *pbx.Notice, now time.Time) (outEvent, error) {
	name := notifyName(n.Type)
	id := schema.EventID(f.host, f.username, "notify", strconv.Itoa(n.Type), string(n.Msg), strconv.FormatInt(now.UnixNano(), 10))
	data := schema.Notify{Extension: f.ref(ext), PBX: f.host, NotificationType: n.Type, Name: name, Msg: n.Msg}
	ev, err := f.build(f.subjects.notify(f.username, name), schema.TypeNotify, id, now, data)
	ev.smaller = func() (outEvent, error) {
		// Too large for NATS: the notification is still worth knowing of,
		// its content is not worth wedging the extension over.
		data.Msg, _ = schema.Marshal(schema.RemovedMsg{Removed: schema.RemovedTooLarge, Size: len(n.Msg)})
		return f.build(ev.subject, schema.TypeNotify, id, now, data)
	}
	return ev, err
}

func (f eventFactory) sessionState(ext pbx.Extension, st, prev, reason string, code int, now time.Time) (outEvent, error) {
	id := schema.EventID(f.host, f.username, "session", st, prev, strconv.FormatInt(now.UnixNano(), 10))
	data := schema.SessionState{Extension: f.ref(ext), PBX: f.host, State: st, Previous: prev, Reason: reason, Code: code}
	return f.build(f.subjects.session(f.username, st), schema.TypeSessionState, id, now, data)
}

func (f eventFactory) runtimeError(ext pbx.Extension, e *pbx.Error, msg, action string, now time.Time) (outEvent, error) {
	id := schema.EventID(f.host, f.username, "runtime.error", strconv.Itoa(e.Code), strconv.FormatInt(now.UnixNano(), 10))
	data := schema.RuntimeError{Extension: f.ref(ext), PBX: f.host, Code: e.Code, Name: e.Name, Message: msg, Action: action}
	return f.build(f.subjects.runtimeErr(f.username), schema.TypeRuntimeError, id, now, data)
}
