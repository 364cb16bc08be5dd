// Package openapi is a client of a Yeastar P-Series PBX's OpenAPI
// (/openapi/v1.0, shared/reference/openapi.md and openapi-events.md), the
// API an application server speaks with one pair of credentials, beside the
// Linkus SDK protocol of package pbx.
//
// A Client (New) holds one access token for all its callers, renewed before
// it expires and never more than two alive, and a backoff after refused
// credentials (see Client). With it:
//   - Sign mints an extension's login signature, the pbx.Config.Secret of
//     its Linkus session;
//   - Extensions lists the PBX's extensions (extension/list), bounded
//     against a PBX that lies about its pages;
//   - NewEventStream receives the PBX's OpenAPI events over the event
//     socket (30011 call states with their whole member lists, 30012 CDRs,
//     30007-30009, 30015, 30034-30036; DecodeEventFrame says how strictly),
//     on the client's token. As with a pbx.Session, every down and every
//     reconnecting up of the stream is a gap;
//   - Dial, Hangup, Hold, Unhold, Transfer and QueryCalls control calls;
//     CallControlStatus maps their errors to HTTP statuses.
//
// The package shares the Linkus client's plumbing (the request engine, the
// sockets' TLS dial, redaction, lenient JSON) through pbx/internal, and
// pbx's errors where both clients fail alike: a failure to reach the PBX
// is a *pbx.TransportError wrapping pbx.ErrPBXNetwork, a bad configuration
// wraps pbx.ErrInvalidConfig, a bad URL pbx.ErrInvalidPBXURL or
// pbx.ErrPBXURLNotHTTPS, and dropped frames are counted by pbx.DropReason.
// The PBX's refusals are an *Error.
//
// The AccessKey, the tokens (which travel in URLs as the access_token
// parameter, the event socket's included) and the minted signatures are
// never logged and never put into an error's text; credential fields and
// pin codes in events are removed before anything reads them.
package openapi
