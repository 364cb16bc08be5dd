// Package pbx speaks to a Yeastar P-Series PBX the way the official Linkus
// browser SDK (ys-webrtc-sdk-core, PBXOperator) does, server-side: the HTTP
// API under /api/v1.0 and the subscribe WebSocket. It knows nothing of what
// the events are then used for.
//
// A Client makes the API calls. A Session is one extension's login: Open
// runs the SDK's init sequence, then keeps the subscribe socket up (topic
// list on every open, heartbeats, reconnect with backoff reusing the token,
// subscribing again when the PBX asks) and delivers the notifications as
// events (Next, Ready). The SDK's runtime errors (-106..-110) end the session; Err then
// wraps the sentinel (errors.Is(err, pbx.ErrReLogin)) and CodeOf gives the
// numeric code. A bridge re-runs Open, with backoff, after a session ends.
//
// # Events and gaps
//
// The events are, in socket order, *SocketState (up, or down with the
// reason), *CDRChanged (20049), *Notice (every other notification type,
// including 20104 and a 10000 about another extension) and *Overflow. The
// socket is lossy by nature: every SocketState{Up: true, Reconnect: true}
// and every *Overflow marks a gap in which notifications may have been
// missed, and the consumer must catch up from the CDR list (CDRQuery). That
// includes SocketState{Up: true, Reconnect: true, Resubscribed: true}, sent
// after the topic list went out again on the same socket because the PBX
// asked (errcode -3) or switched over (20104). Session.LoginTime says when
// the login happened by the PBX's clock: a first start that means "from now
// on" means records stamped after it.
//
// # Slow-consumer policy
//
// At most Config.EventBuffer events wait to be taken (Next); their storage
// grows as they wait and is given back once they are taken, so an idle
// session holds a few slots, not EventBuffer. The socket reader never
// blocks for long on the consumer:
//   - When EventBuffer events wait, the reader waits up to
//     Config.DeliverTimeout for room. If there is still none, it drops the event, counts it and
//     calls Hooks.FrameDropped("overflow").
//   - While a drop is pending, the reader does not wait at all: each new
//     event goes through only if there is room for an *Overflow
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
//   - Heartbeats go on meanwhile: they run from a timer of their own (a
//     runtime timer, not a goroutine: an idle socket costs the reader's
//     goroutine only), and the time the reader spends blocked on the
//     consumer does not count towards the pong timeout, so a slow consumer
//     never makes the PBX look dead.
//
// # Requests per login
//
// Every request is load on a box that also carries the calls, so Open asks
// the PBX only what decides something, and a login after the first costs
// two API requests (login, extension/getpersonal) and the socket's upgrade.
// Where it departs from the SDK's init sequence, and why:
//   - pbx/getproduct is asked once per PBX and process when the sessions
//     of that PBX share a ProductCache (the bridge makes one per PBX):
//     version and plan mode are the PBX's, not the extension's. It is read
//     again, once for all the sessions, after the PBX was unreachable (an
//     API call failed in transport or timed out, a socket dial failed, a
//     socket was lost) or switched over (20104): a firmware upgrade
//     restarts the PBX and a standby may run another firmware, so a socket
//     opened after that subscribes with the new firmware's topic list.
//     A failed read is shared for a second, so that a PBX that is down is
//     not asked once per reconnect attempt of every session.
//   - extension/getpersonalglobal is asked in the "cn" plan mode only,
//     where its enb_internal_client decides -106. In the "en" plan mode
//     nothing in its answer (NAT/FQDN, TURN port, record feature code)
//     decides anything: it serves the phone side.
//   - licenseservice/get is skipped: it carries the phone's feature flags
//     (fqdn, video), which a bridge never uses. The SDK also aborts its
//     init when that answer has an errcode; a bridge has no reason to stay
//     offline over a license service that cannot say whether video calls
//     are licensed.
//   - extension/getregisterinfo is skipped: it serves SIP registration,
//     which a bridge does not do, and its answer holds the SIP password, a
//     credential better never fetched.
//   - extension/getpersonal is always asked: it says who the session is,
//     its "en" plan client flag decides -106, and a missing extension is
//     -104.
//
// Client keeps a method for each endpoint (GetLicense, GetPersonalGlobal,
// GetProduct) for callers that want them.
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
// delay from Config.ReconnectMin up to Config.ReconnectMax (jitter included),
// without limit; the delay starts over after a socket that stayed up at
// least ReconnectMin. The SDK never notices a dead token: it reconnects
// forever. A session instead probes the token (extension/getpersonal) when a
// dial is refused with HTTP 401 or 403, or after two short failures in a row
// (a failed dial, or a socket that closed sooner than ReconnectMin after it
// opened). If the answer rejects the token (IsTokenRejected: HTTP 401/403,
// errcode 10004, or an errmsg about the token) the session ends with
// ErrTokenRejected and the bridge logs in again; any other API error, a
// transport error or a success means keep reconnecting. A CDRQuery whose
// answer rejects the token ends the session the same way, although the
// socket may still be up: only a new login cures it.
//
// # What a misbehaving PBX gets
//
// A real PBX is not the simulator: firmware differs in field types, error
// texts and what its bodies carry, and the network in between may be
// anything. What each deviation gets:
//   - A number sent as a string ("2546") or as a float (2546.0), a string
//     field sent as a number: read as the SDK's JavaScript reads them, in
//     every answer the client reads (CDR records and their extension
//     block, total_number, getpersonal, getpersonalglobal, getproduct's
//     base_oem_id and oem_id, 20049's personal_cdr). Keys match exactly.
//   - A field that cannot be read (an object for a number, a fraction,
//     "abc"): left at its zero value and reported, never silently:
//     Hooks.DecodeProblem(endpoint, field) for each, and a warning naming
//     the endpoint, the field and the JSON kind, never the value. An
//     unusable total_number reads as -1, which a consumer must take for an
//     anomaly; a record with an unusable id keeps ID 0 and its place in the
//     page. A personal_cdr_list that is there but no list fails the query
//     (ErrPBXAPI): reading it as empty would lose a page.
//   - Flags (getpersonal's enb_*, getpersonalglobal's enb_internal_client,
//     20153, 20015, 20013, 20082) compare with 1 as JavaScript's == does:
//     1, 1.0, "1", " 1 " and true are 1; 0, "0", "", null, a missing field
//     and objects are not.
//   - A credential in a notification (20066's SIP password, or any field
//     named like one): removed (see Credentials). An errmsg that echoes the
//     secret or a token: redacted, however short the secret (a secret below
//     MinSignatureLen cannot be a real signature; the bridge warns).
//   - An upgrade answered with an endless header: the dial reads at most
//     64 KiB of handshake and fails at once ("handshake answer larger than
//     64 KiB"), within RequestTimeout in any case, and is retried with
//     backoff.
//   - A flood of garbage or unknown frames: each is dropped and counted
//     (Hooks.FrameDropped); the warnings are sampled per session and kind,
//     the first logged, then at most one per 10 s with the number
//     suppressed since, and the rest counted at the session's end. Undecodable
//     fields are sampled the same way.
//   - A frame larger than Config.MaxFrameBytes: the socket is closed and
//     dialled again. DefaultMaxFrameBytes is 1 MiB less 16 KiB, so an event
//     built from any accepted frame fits the NATS server's default
//     max_payload (1 MiB) with room for its envelope.
//   - A PBX that checks getproduct's host: it gets what the SDK's URL.host
//     sends (lower case, no default port).
//
// Paging is the consumer's: the client returns each page as the PBX served
// it, whatever its size, total or repetitions; a scan must be bounded by
// what the PBX actually returned.
//
// # The OpenAPI
//
// The PBX's OpenAPI (login signatures, the extension list, the event
// socket, call control) is package pbx/openapi, which imports this one; this
// package never imports it. The two share their plumbing through
// pbx/internal (wire, httpapi, loose, redact, sample) and this package's
// errors, Closer, Limiter and DropReason.
//
// # Where the reference leaves room
//
// The other choices made where the SDK's behaviour is not pinned down are
// documented on the functions concerned: DecodeFrame (what is dropped and
// why), VersionAtLeast (odd version strings), CDRQuery.Validate (limits; the
// one place they live) and Open (logout on -106 only). Configuration errors wrap ErrInvalidConfig; InsecureSkipVerify
// together with CAFile or RootCAs is one.
package pbx
