package pbx

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/pbx-bridge/pbx-bridge/pbx/internal/httpapi"
)

// Error is one of the SDK's PBXResult codes: a negative number and its name.
// The values below are sentinels; errors returned by this package wrap them, so
// callers branch with errors.Is(err, pbx.ErrReLogin) and read the numeric code
// with errors.As(err, &e) or pbx.CodeOf(err).
type Error struct {
	Code int
	Name string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%d)", e.Name, e.Code) }

// The SDK's common and runtime result codes, with the SDK's names.
var (
	ErrUnknown               = &Error{-1, "UNKNOWN_ERROR"}
	ErrInvalidPBXURL         = &Error{-2, "INVALID_PBX_URL"}
	ErrPBXURLNotHTTPS        = &Error{-3, "PBX_URL_NOT_HTTPS"}
	ErrGetProductFailed      = &Error{-4, "GET_PRODUCT_FAILED"}
	ErrRuntimeUnknown        = &Error{-100, "UNKNOWN_ERROR"}
	ErrRegistryFailed        = &Error{-101, "REGISTRY_FAILED"}
	ErrPBXNetwork            = &Error{-102, "PBX_NETWORK_ERROR"}
	ErrPBXAPI                = &Error{-103, "PBX_API_ERROR"}
	ErrGetPersonalNotFound   = &Error{-104, "GET_PERSONAL_NOT_FOUND_DATA"}
	ErrPBXAlreadyInitialized = &Error{-105, "PBX_ALREADY_INITIALIZED"}
	ErrLinkusDisabled        = &Error{-106, "LINKUS_DISABLED"}
	ErrLoggedInElsewhere     = &Error{-107, "LOGGED_IN_ELSEWHERE"}
	ErrExtensionDeleted      = &Error{-108, "EXTENSION_DELETED"}
	ErrReLogin               = &Error{-109, "RE_LOGIN"}
	ErrSDKPlanDisabled       = &Error{-110, "SDK_PLAN_DISABLED"}
)

// RuntimeErrors are the codes a live session can end with (-106..-110), in
// code order. A bridge reports each of them as an event.
var RuntimeErrors = []*Error{ErrLinkusDisabled, ErrLoggedInElsewhere, ErrExtensionDeleted, ErrReLogin, ErrSDKPlanDisabled}

// CodeOf returns the SDK code of the *Error that err wraps, and false if it
// wraps none.
func CodeOf(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// APIError is a non-zero errcode in a PBX response (or an HTTP 401/403,
// where ErrCode may be 0: the PBX refusing the token). It keeps the PBX's own
// code and message, and wraps the SDK code the failure maps to (usually
// ErrPBXAPI; ErrSDKPlanDisabled for login errcode 70136; ErrGetProductFailed
// for getproduct), so both errors.Is and errors.As work on it.
type APIError struct {
	Endpoint   string // the API path, e.g. "/api/v1.0/login"; never carries a token
	HTTPStatus int
	ErrCode    int
	ErrMsg     string
	SDK        *Error
}

func (e *APIError) Error() string {
	if e.HTTPStatus != 0 && e.HTTPStatus != 200 {
		return fmt.Sprintf("pbx %s: HTTP %d errcode %d %q (%s)", e.Endpoint, e.HTTPStatus, e.ErrCode, e.ErrMsg, e.SDK)
	}
	return fmt.Sprintf("pbx %s: errcode %d %q (%s)", e.Endpoint, e.ErrCode, e.ErrMsg, e.SDK)
}

func (e *APIError) Unwrap() error { return e.SDK }

// IsTokenRejected reports whether err says the PBX refused the access token:
// an error wrapping ErrTokenRejected, or an *APIError with HTTP 401 or 403,
// errcode 10004, or an errmsg that mentions a token (in any case), since
// firmware words it differently. Other API errors (10001, 40002, an HTTP
// 5xx, ...) and transport errors are not: they say nothing about the token.
// A rejected token needs a new login; see Session.
func IsTokenRejected(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrTokenRejected) {
		return true
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.HTTPStatus == http.StatusUnauthorized || ae.HTTPStatus == http.StatusForbidden ||
		ae.ErrCode == httpapi.ErrCodeTokenInvalid || strings.Contains(strings.ToLower(ae.ErrMsg), "token")
}

// TransportError is a failure to reach the PBX or to read its answer. It wraps
// ErrPBXNetwork (or ErrGetProductFailed for getproduct) and the cause, whose
// text has had URLs redacted.
type TransportError struct {
	Endpoint string
	SDK      *Error
	Err      error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("pbx %s: %v (%s)", e.Endpoint, e.Err, e.SDK)
}

func (e *TransportError) Unwrap() []error { return []error{e.SDK, e.Err} }

// Errors of this package that have no SDK code.
var (
	// ErrClosed is why a session ended when its owner closed it (Close or
	// Logout).
	ErrClosed = errors.New("pbx: session closed")
	// ErrTokenRejected is why a session ended when the PBX stopped accepting
	// its access token (found by the token probe after socket failures, or
	// by an API call of the session; see IsTokenRejected). The cure is a new
	// login: open a new session.
	ErrTokenRejected = errors.New("pbx: access token rejected")
	// ErrInvalidQuery is wrapped by every error about a CDRQuery that the
	// PBX would refuse; the query is not sent.
	ErrInvalidQuery = errors.New("pbx: invalid CDR query")
	// ErrInvalidConfig is wrapped by every error about a Config field other
	// than the URL (whose errors wrap ErrInvalidPBXURL or ErrPBXURLNotHTTPS).
	ErrInvalidConfig = errors.New("pbx: invalid config")
	// ErrHeartbeatTimeout is why the socket went down (SocketState.Err wraps
	// it) when nothing arrived within PongTimeout after a heartbeat.
	ErrHeartbeatTimeout = errors.New("pbx: no frame within PongTimeout after a heartbeat")
)

// RuntimeError is one of the SDK's runtime errors (-106..-110), raised by a
// notification on the subscribe socket or, for -106, by the init sequence.
// It wraps its SDK code, so errors.Is(err, pbx.ErrReLogin) and pbx.CodeOf
// work on it.
type RuntimeError struct {
	SDK    *Error
	Type   int    // the notification type that raised it; 0 when found during init
	Detail string // what the PBX said, in words; never a credential
}

func (e *RuntimeError) Error() string {
	if e.Type == 0 {
		return fmt.Sprintf("pbx runtime error %s: %s", e.SDK, e.Detail)
	}
	return fmt.Sprintf("pbx runtime error %s: notification %d: %s", e.SDK, e.Type, e.Detail)
}

func (e *RuntimeError) Unwrap() error { return e.SDK }
