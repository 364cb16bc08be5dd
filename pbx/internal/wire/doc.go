// Package wire is the PBX clients' side of the connection to a PBX's
// sockets: the TLS settings, the bounded TLS dial of a WebSocket (through
// the environment's proxy), the socket's write side, the heartbeat frames
// and the reconnect delays. The Linkus subscribe socket and the OpenAPI
// event socket both ride on it.
package wire
