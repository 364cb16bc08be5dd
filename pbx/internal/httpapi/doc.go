// Package httpapi is the one request engine of both of the PBX's HTTP APIs
// (the Linkus SDK's /api/v1.0 and the OpenAPI's /openapi/v1.0), and the
// HTTP client they share: the limiter, the timeout, the JSON body, the
// bounded answer, the envelope's errcode, and the one rule of what is the
// PBX refusing and what is the way to the PBX failing. Each API maps the
// outcome to its own error types.
package httpapi
