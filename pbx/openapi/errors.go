package openapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Errors of the OpenAPI client, wrapped by the errors it returns.
var (
	// ErrAuth is wrapped by the *Error of a refused
	// get_token, and of every call failed fast while the client waits
	// before trying the credentials again.
	ErrAuth = errors.New("pbx: the PBX refused the OpenAPI credentials")
	// ErrSignRefused is wrapped by the *Error of a refused
	// sign/create.
	ErrSignRefused = errors.New("pbx: the PBX refused to mint a login signature")
	// ErrExtensionListRefused is wrapped by the *Error of a refused
	// extension/list: credentials that may not list extensions (Linkus SDK
	// credentials may not, on some PBXs; API credentials from
	// Integrations > API may).
	ErrExtensionListRefused = errors.New("pbx: the PBX refused to list the extensions")
	// ErrExtensionListIncomplete is wrapped by the error of an extension
	// listing that could not be read to its end (see Extensions); the
	// extensions read so far are returned with it.
	ErrExtensionListIncomplete = errors.New("pbx: the PBX's extension list could not be read to its end")
	// ErrTokenCap is wrapped by the *Error of a get_token
	// refused because the application holds the most access tokens the PBX
	// allows (8). The client waits before trying again, as for ErrAuth.
	ErrTokenCap = errors.New("pbx: the PBX holds its maximum of access tokens for these OpenAPI credentials")
	// ErrClosed is returned by the calls made after Close.
	ErrClosed = errors.New("pbx: OpenAPI client closed")
)

// Error is a non-zero errcode in an OpenAPI answer, or an HTTP 401
// or 403 (where ErrCode may be 0). It keeps the PBX's code and message and
// wraps Kind, so that both errors.Is and errors.As work on it.
type Error struct {
	Endpoint   string // the path, e.g. "/openapi/v1.0/sign/create"; never carries a token
	HTTPStatus int
	ErrCode    int
	ErrMsg     string // as the PBX said it, redacted
	// Kind is ErrAuth, ErrSignRefused or ErrExtensionListRefused;
	// nil for the token endpoints other than get_token.
	Kind error
	// RetryAt is, for ErrAuth, when the client will try the
	// credentials again; calls before then fail without a request.
	RetryAt time.Time
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pbx %s: ", e.Endpoint)
	if e.HTTPStatus != 0 && e.HTTPStatus != http.StatusOK {
		fmt.Fprintf(&b, "HTTP %d ", e.HTTPStatus)
	}
	fmt.Fprintf(&b, "errcode %d %q", e.ErrCode, e.ErrMsg)
	if e.Kind != nil {
		fmt.Fprintf(&b, " (%v)", e.Kind)
	}
	if !e.RetryAt.IsZero() {
		fmt.Fprintf(&b, "; next attempt at %s", e.RetryAt.Format(time.RFC3339))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Kind }
