package openapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pbx-bridge/pbx-bridge/pbx"
	"github.com/pbx-bridge/pbx-bridge/pbx/internal/loose"
)

// The lifetimes assumed when an answer gives none (or an absurd one): the
// reference's. Being wrong costs one failed call and a retry.
const (
	defaultAccessLifetime  = 30 * time.Minute
	defaultRefreshLifetime = 24 * time.Hour
	maxTokenLifetime       = 30 * 24 * time.Hour
)

// renewAtFraction is how far into its lifetime an access token is renewed,
// on its first use after that point.
const renewAtFraction = 0.8

// renewRetryDelay is how long a held token that is still valid is used
// without a new renewal attempt after one failed: a PBX that is briefly
// unreachable should not get a renewal attempt with every call.
const renewRetryDelay = 30 * time.Second

// accessToken is the pair that get_token or refresh_token gave, with its
// times by the client's clock (counted from when the request was sent).
type accessToken struct {
	access, refresh       string
	renewAt               time.Time
	accessExp, refreshExp time.Time
}

// tokenFetch is a renewal in flight, shared by every caller that needs it.
type tokenFetch struct {
	done chan struct{} // closed when tok or err is set
	tok  *accessToken
	err  error
}

// token returns the access token to use. stale is the token a call just
// failed with ("" for none): unless it has been replaced already, it is
// renewed. Callers that need a renewal while one is in flight wait for it.
// When a renewal fails, the held token goes on being used while it is
// valid by the clock (and not stale).
func (o *Client) token(ctx context.Context, stale string) (string, error) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return "", ErrClosed
	}
	now := o.cfg.Now()
	held := o.tok
	usable := held != nil && held.access != stale && now.Before(held.accessExp)
	if usable && (now.Before(held.renewAt) || now.Before(o.renewRetryAt)) {
		o.mu.Unlock()
		return held.access, nil
	}
	f := o.fetch
	if f == nil {
		if o.authErr != nil && now.Before(o.authErr.RetryAt) {
			err := *o.authErr
			o.mu.Unlock()
			if usable {
				return held.access, nil
			}
			return "", &err
		}
		f = &tokenFetch{done: make(chan struct{})}
		o.fetch = f
		o.wg.Add(1)
		go o.renew(f, o.tok)
	}
	o.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if f.err != nil {
		if usable {
			return held.access, nil
		}
		return "", f.err
	}
	return f.tok.access, nil
}

// renew gets a new token for f, replacing old (nil for none). It runs on its
// own goroutine with the client's context, so that a caller giving up does
// not fail the others waiting for the same token.
func (o *Client) renew(f *tokenFetch, old *accessToken) {
	defer o.wg.Done()
	// Two requests at most (refresh_token, get_token), each with a limiter
	// wait before it.
	bound, unbind := o.closing.Bind(context.Background())
	defer unbind()
	ctx, cancel := context.WithTimeout(bound, 4*o.cfg.RequestTimeout)
	defer cancel()
	tok, how, err := o.obtain(ctx, old)
	// The replaced token may still be valid (the reference does not say
	// whether refresh_token ends it): revoke it before the new one is
	// used, so that at most two are ever alive, even when renewals follow
	// each other closely. A PBX that already ended it refuses, which is
	// fine. Meanwhile callers wait for this renewal.
	if err == nil && old != nil && old.access != tok.access && o.cfg.Now().Before(old.accessExp) {
		rctx, cancel := context.WithTimeout(bound, o.cfg.RequestTimeout)
		if err := o.revoke(rctx, old.access); err != nil {
			o.log.Debug("pbx openapi: revoking the replaced token failed", "err", err)
		}
		cancel()
	}
	if err == nil {
		if o.cfg.Hooks.TokenRefreshed != nil {
			o.cfg.Hooks.TokenRefreshed(how)
		}
		o.log.Info("pbx openapi: new access token", "how", how, "renew_in", tok.renewAt.Sub(o.cfg.Now()).Round(time.Second))
	}

	o.mu.Lock()
	if err == nil {
		o.tok, o.authErr, o.authBackoff, o.renewRetryAt = tok, nil, 0, time.Time{}
	} else {
		o.renewRetryAt = o.cfg.Now().Add(renewRetryDelay)
	}
	if oe := (*Error)(nil); errors.As(err, &oe) && (oe.Kind == ErrAuth || oe.Kind == ErrTokenCap) {
		o.authBackoff = min(max(2*o.authBackoff, o.cfg.AuthBackoffMin), o.cfg.AuthBackoffMax)
		oe.RetryAt = o.cfg.Now().Add(o.authBackoff)
		o.authErr = oe
		if oe.Kind == ErrTokenCap {
			o.log.Warn(fmt.Sprintf("pbx openapi: the PBX holds its maximum of access tokens for these OpenAPI credentials (AccessID %s): "+
				"another application or a replica that died holds them until they expire (30 minutes at most); retrying in %s",
				o.cfg.AccessID, o.authBackoff), "reason", "token_cap", "errcode", oe.ErrCode, "errmsg", oe.ErrMsg)
		} else {
			o.log.Error(fmt.Sprintf("pbx openapi: the PBX refused the OpenAPI credentials (AccessID %s): check Integrations > Linkus SDK / API; retrying in %s",
				o.cfg.AccessID, o.authBackoff), "errcode", oe.ErrCode, "errmsg", oe.ErrMsg, "http_status", oe.HTTPStatus)
		}
	}
	f.tok, f.err = tok, err
	o.fetch = nil
	close(f.done)
	o.mu.Unlock()
}

// obtain renews old with refresh_token while its refresh token is valid, and
// otherwise (or when that fails) gets a new token with the credentials.
func (o *Client) obtain(ctx context.Context, old *accessToken) (*accessToken, string, error) {
	if old != nil && old.refresh != "" && o.cfg.Now().Before(old.refreshExp) {
		tok, err := o.requestToken(ctx, "refresh_token", map[string]string{"refresh_token": old.refresh})
		if err == nil {
			return tok, "refresh_token", nil
		}
		if ctx.Err() != nil {
			return nil, "", err
		}
		o.log.Info("pbx openapi: refresh_token failed, getting a new token", "err", err)
	}
	tok, err := o.requestToken(ctx, "get_token", map[string]string{"username": o.cfg.AccessID, "password": o.cfg.AccessKey})
	if oe := (*Error)(nil); errors.As(err, &oe) {
		oe.Kind = ErrAuth
		if atTokenCap(oe) {
			oe.Kind = ErrTokenCap
		}
	}
	return tok, "get_token", err
}

// atTokenCap reports whether a refused get_token says the application holds
// the most access tokens the PBX allows (8, by Yeastar's pages). The errcode
// of that refusal is not documented: 60002 is the reference's "MAX
// LIMITATION EXCEEDED", and any message naming a limit is read the same,
// since mistaking a cap for refused credentials sends the operator after
// the wrong cause.
func atTokenCap(oe *Error) bool {
	return oe.ErrCode == 60002 || strings.Contains(strings.ToUpper(oe.ErrMsg), "LIMIT")
}

// tokenAnswer is the answer of get_token and refresh_token.
type tokenAnswer struct {
	AccessToken   string `json:"access_token"`
	AccessExpire  any    `json:"access_token_expire_time"`
	RefreshToken  string `json:"refresh_token"`
	RefreshExpire any    `json:"refresh_token_expire_time"`
}

// requestToken calls get_token or refresh_token.
func (o *Client) requestToken(ctx context.Context, ep string, body map[string]string) (*accessToken, error) {
	sent := o.cfg.Now()
	data, err := o.do(ctx, http.MethodPost, ep, "", nil, body, nil)
	if err != nil {
		return nil, err
	}
	var out tokenAnswer
	if err := loose.Unmarshal(data, &out); err != nil {
		return nil, &pbx.TransportError{Endpoint: openAPIPrefix + ep, SDK: pbx.ErrPBXNetwork, Err: fmt.Errorf("decoding the answer: %w", err)}
	}
	if out.AccessToken == "" {
		return nil, &pbx.TransportError{Endpoint: openAPIPrefix + ep, SDK: pbx.ErrPBXNetwork, Err: errors.New("answer has no access_token")}
	}
	for _, t := range []string{out.AccessToken, out.RefreshToken} {
		o.red.Add(t)
		o.red.Add(url.QueryEscape(t))
	}
	access := lifetime(out.AccessExpire, defaultAccessLifetime)
	tok := &accessToken{
		access:    out.AccessToken,
		refresh:   out.RefreshToken,
		renewAt:   sent.Add(time.Duration(float64(access) * renewAtFraction)),
		accessExp: sent.Add(access),
	}
	if tok.refresh != "" {
		tok.refreshExp = sent.Add(lifetime(out.RefreshExpire, defaultRefreshLifetime))
	}
	return tok, nil
}

// lifetime reads an expire time in seconds (a number, or a numeric string),
// and gives def for a missing, non-positive or absurd one.
func lifetime(v any, def time.Duration) time.Duration {
	n, ok := loose.Int(v)
	if !ok || n <= 0 || time.Duration(n)*time.Second > maxTokenLifetime {
		return def
	}
	return time.Duration(n) * time.Second
}

// revoke ends an access token with del_token.
func (o *Client) revoke(ctx context.Context, token string) error {
	_, err := o.do(ctx, http.MethodGet, "del_token", token, nil, nil, nil)
	return err
}

// authedCall makes a call with the held token and decodes a successful
// answer into out. A failure that is the PBX speaking (an *Error)
// may mean the token is stale: the token is renewed once and the call
// retried once. kind is what the call's refusals wrap.
func (o *Client) authedCall(ctx context.Context, method, ep string, q url.Values, body any, kind error, out any) error {
	token, err := o.token(ctx, "")
	if err != nil {
		return err
	}
	data, err := o.do(ctx, method, ep, token, q, body, kind)
	if oe := (*Error)(nil); errors.As(err, &oe) {
		o.log.Debug("pbx openapi: call refused, retrying once with a renewed token", "endpoint", ep, "err", err)
		if token, err = o.token(ctx, token); err != nil {
			return err
		}
		data, err = o.do(ctx, method, ep, token, q, body, kind)
	}
	if err != nil {
		return err
	}
	if err := loose.Unmarshal(data, out); err != nil {
		return &pbx.TransportError{Endpoint: openAPIPrefix + ep, SDK: pbx.ErrPBXNetwork, Err: fmt.Errorf("decoding the answer: %w", err)}
	}
	return nil
}
