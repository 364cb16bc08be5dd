package bridge

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/schema"
)

// The events of a call record, as catch-up (bridge/catchup) hands the
// records over: call.missed and cdr.created, built, sized and published in
// order.

// catchupBatch is the number of records published between two cursor
// writes. The stream's last cdr.created says how far the publishes got
// should the bridge stop before its cursor write (catchup.KVStore), so the batch
// only bounds the work a crash sends again, and the KV writes: one per
// batch rather than one per record.
const catchupBatch = 500

// publishRecords publishes records (oldest first), pipelined
// (publishInOrder): call.missed (for a missed call) and then cdr.created of
// each, in that order, and reports progress every catchupBatch records; it
// returns how many records have all their events dealt with. Both ids derive from the PBX and the record, so a replay
// carries the same ids and JetStream drops it as a duplicate.
//
// cdr.created goes last on purpose: the extension's last cdr.created in the
// stream is one of the cursor's sources (catchup.KVStore), so it must mean that
// every event of its record and of the records before it was stored;
// publishInOrder keeps that under failures too. A crash between the two
// publishes republishes call.missed (same id) rather than losing it.
//
// An event too large for the NATS server is dropped with an error and
// pbx_bridge_events_dropped_total and counts as dealt with, as in publish:
// retrying what can never succeed would wedge the extension.
//
// It is the extension's catchup.PublishFunc: progress saves the cursor.
func (x *extension) publishRecords(ctx context.Context, recs []pbx.CDR, progress func(n int) error) (int, error) {
	info := x.extInfo()
	now := x.b.cfg.now()
	return x.b.pub.publishInOrder(ctx, orderedBatch{
		n:        len(recs),
		events:   func(i int) ([]outEvent, error) { return x.recordEvents(info, recs[i], now) },
		dropped:  x.dropTooLarge,
		progress: progress,
		every:    catchupBatch,
	})
}

// recordEvents builds a record's events in publish order, without those
// too large to ever be published (fits).
func (x *extension) recordEvents(info pbx.Extension, r pbx.CDR, now time.Time) ([]outEvent, error) {
	evs := make([]outEvent, 0, 2)
	if r.Missed() {
		ev, err := x.f.callMissed(info, r, now)
		if err != nil {
			x.log.Error("event not built", "err", err)
			return nil, fmt.Errorf("record %d not published: %w", r.ID, err)
		}
		if ev, ok := x.fits(ev); ok {
			evs = append(evs, ev)
		}
	}
	ev, err := x.f.cdrCreated(info, r, now)
	if err != nil {
		x.log.Error("event not built", "err", err)
		return nil, fmt.Errorf("record %d not published: %w", r.ID, err)
	}
	if ev, ok := x.fits(ev); ok {
		evs = append(evs, ev)
	}
	return evs, nil
}

// fits applies the size rule to ev before it goes out (publish and
// catch-up alike): an event
// larger than the NATS server's max_payload is shrunk if it can be, and
// dropped (false: with an error and the metric) if it cannot.
func (x *extension) fits(ev outEvent) (outEvent, bool) {
	limit := x.b.nc.MaxPayload()
	if limit <= 0 || int64(ev.wireSize()) <= limit {
		return ev, true
	}
	if ev.smaller != nil {
		size := ev.wireSize()
		small, err := ev.smaller()
		if err == nil && int64(small.wireSize()) <= limit {
			x.log.Warn("event larger than the NATS server's max_payload: its content was replaced by a marker",
				"subject", ev.subject, "size", size, "max_payload", limit)
			return small, true
		}
	}
	x.dropTooLarge(ev, errTooLarge)
	return ev, false
}

// dropTooLarge counts and logs an event that can never be published.
func (x *extension) dropTooLarge(ev outEvent, err error) {
	x.b.metrics.eventDropped(ev.typ, "too_large")
	x.log.Error("event dropped: larger than the NATS server's max_payload", "subject", ev.subject,
		"type", ev.typ, "size", ev.wireSize(), "max_payload", x.b.nc.MaxPayload(), "err", err)
}

// recordID is the identity of a CDR record on its PBX.
func (f eventFactory) recordID(kind string, r pbx.CDR) string {
	return schema.EventID(f.host, f.username, kind, strconv.Itoa(r.ID), r.UniqueID)
}

func (f eventFactory) cdrCreated(ext pbx.Extension, r pbx.CDR, _ time.Time) (outEvent, error) {
	data := schema.CDRCreated{Extension: f.ref(ext), PBX: f.host, Record: r}
	return f.build(f.subjects.cdrCreated(f.username), schema.TypeCDRCreated, f.recordID("cdr.created", r), recordTime(r), data)
}

func (f eventFactory) callMissed(ext pbx.Extension, r pbx.CDR, _ time.Time) (outEvent, error) {
	data := schema.CallMissed{
		Extension:    f.ref(ext),
		PBX:          f.host,
		CDRID:        r.ID,
		UniqueID:     r.UniqueID,
		CallerNumber: r.Number,
		CallerID:     r.CallerID,
		CLID:         r.CLID,
		Time:         recordTime(r),
		Timestamp:    r.Timestamp,
		Disposition:  r.Disposition,
		CallType:     r.CallType,
		Record:       r,
	}
	return f.build(f.subjects.callMissed(f.username), schema.TypeCallMissed, f.recordID("call.missed", r), recordTime(r), data)
}

// recordTime is the call's time; the event's time too, so that a replayed
// event is byte-for-byte the same.
func recordTime(r pbx.CDR) time.Time { return time.Unix(r.Timestamp, 0).UTC() }
