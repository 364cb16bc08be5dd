// Package pbx speaks to a Yeastar P-Series PBX the way the official Linkus
// browser SDK (ys-webrtc-sdk-core, PBXOperator) does, server-side: the HTTP
// API under /api/v1.0 and the subscribe WebSocket. It knows nothing of what
// the events are then used for.
//
// A Client makes the API calls. A Session is one extension's login: Open
// runs the SDK's init sequence, then keeps the subscribe socket up (topic
// list on every open, heartbeats, reconnect with backoff reusing the token,
// subscribing again when the PBX asks) and delivers the notifications on
// Events. The SDK's runtime errors (-106..-110) end the session; Err then
// wraps the sentinel (errors.Is(err, pbx.ErrReLogin)) and CodeOf gives the
// numeric code. A bridge re-runs Open, with backoff, after a session ends.
//
// # Events and gaps
//
// Events carries, in socket order, *SocketState (up, or down with the
// reason), *CDRChanged (20049), *Notice (every other notification type,
// including 20104 and a 10000 about another extension) and *Overflow. The
// socket is lossy by nature: every SocketState{Up: true, Reconnect: true}
// and every *Overflow marks a gap in which notifications may have been
// missed, and the consumer must catch up from the CDR list (CDRQuery).
//
// # Slow-consumer policy
//
// Events is a buffered channel of Config.EventBuffer. The socket reader
// never blocks for long on it:
//   - When the channel is full, the reader waits up to Config.DeliverTimeout
//     for room. If there is still none, it drops the event, counts it and
//     calls Hooks.FrameDropped("overflow").
//   - While a drop is pending, the reader does not wait at all: each new
//     event goes through only if the channel has room for an *Overflow
//     {Dropped: n} first (which is delivered just before it); otherwise it
//     is dropped too. So a stuck consumer costs one DeliverTimeout per
//     overflow, not one per frame, and the next event that gets through is
//     always preceded by the count of what was lost.
//   - A *SocketState is never dropped: the reader waits for the consumer
//     (or the session's end) however long it takes, after delivering any
//     pending *Overflow. A consumer that missed "up" would believe the
//     socket down until the next change, which may never come; and state
//     changes are rare, so the wait costs the socket little.
//   - Runtime errors are never lost: they end the session through Err and
//     Done, whatever happened to the Notice of their frame.
//   - Heartbeats go on meanwhile: they have their own goroutine, and the
//     time the reader spends blocked on the consumer does not count towards
//     the pong timeout, so a slow consumer never makes the PBX look dead.
//
// # Credentials
//
// The signature (Config.Secret) and the access token are never logged and
// never put into an error's text: error texts that could carry them (URLs
// in dial and transport errors; the token travels in the socket URL; an
// errmsg that echoes the password) are redacted, the secret and tokens by
// value whatever their length, and a dropped frame is logged only as a
// short, sanitized, redacted prefix. Redact does the same for callers' own
// log lines: it replaces the value of every key=value and JSON field whose
// name says it is a credential.
//
// Credentials the PBX sends never leave the package either: DecodeFrame
// replaces the value of every field of a notification's msg, at any depth,
// whose name contains password, passwd, pwd, secret, token, key, sign, auth
// or ha1 (in any case) with RemovedCredential (RedactCredentialFields), so
// Notice.Msg and Frame.Msg never carry one; 20066 (SIP registration data)
// carries the SIP password. The runtime rules read only other fields.
//
// # Reconnects and the token probe
//
// After any close the socket is dialled again after an exponential, jittered
// delay from Config.ReconnectMin up to Config.ReconnectMax, without limit;
// the delay starts over after a socket that stayed up at least ReconnectMin.
// The SDK never notices a dead token: it reconnects forever. A session
// instead probes the token (extension/getpersonal) when a dial is refused
// with HTTP 401 or 403, or after two short failures in a row (a failed dial,
// or a socket that closed sooner than ReconnectMin after it opened). If the
// PBX answers the probe with an errcode (or 401/403) the session ends with
// ErrTokenRejected and the bridge logs in again; a transport error or a
// success means keep reconnecting.
//
// # Where the reference leaves room
//
// The other choices made where the SDK's behaviour is not pinned down are
// documented on the functions concerned: DecodeFrame (what is dropped and
// why), VersionAtLeast (odd version strings), CDRQuery.Normalized (limits)
// and Open (getregisterinfo is skipped; logout on -106 only).
package pbx
