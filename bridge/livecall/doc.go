// Package livecall turns the PBX's OpenAPI events (openapi.Event, from
// openapi.EventStream) into the bridge's live events, and serves call control
// requests.
//
// A Tracker keeps the state of every live call, member by member, and of
// every extension's presence, registrations and call status. Fed an event
// with Observe, it returns the events to publish: one per change of an
// extension's state, with a deterministic id, so that a frame the PBX
// repeats (30011 carries the whole member list on every change of any
// member), or the same frames seen by a replica that took over with the
// state the last one saved (Export, Import), give the same ids, which the
// stream's duplicate window drops. Its state is bounded: ended calls are
// forgotten (a short-lived tombstone drops their late frames), calls
// silent for CallTTL are expired, and MaxCalls and MaxExtensions cap the
// rest, each drop counted (Stats).
//
// A Controller serves the call control requests (dial, hangup, hold,
// unhold, transfer, list) of the extensions the bridge serves: one parser
// validates each body, the extension's channel is found from the Tracker
// (or call/query), and the PBX's errors map to the request/reply API's
// codes (openapi.CallControlStatus).
//
// The package knows no NATS: it returns subjects' suffixes, types, ids and
// data, and replies with codes; the bridge publishes and answers. The
// subjects, the id scheme and what is assumed of the PBX are in
// docs/live-calls.md.
package livecall
