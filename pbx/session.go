package pbx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Session is one extension's login to the PBX: the SDK's init sequence, then
// the subscribe socket, kept up until a runtime error, a rejected token or
// Close. Its methods are safe for concurrent use.
type Session struct {
	client    *Client
	cfg       Config
	log       *slog.Logger
	personal  Personal
	loginTime time.Time
	rules     runtimeRules

	events *eventQueue
	done   chan struct{}
	ctx    context.Context // the session's; ends with it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	err    error
	ending error // why the session was told to end from outside its socket goroutine
	// product and topics change only on the socket goroutine, when a
	// socket opens after the PBX's product was read again.
	product Product
	topics  []int

	// dropped counts events thrown away since the last delivered one. Only
	// the socket goroutine touches it.
	dropped int
}

// Open runs the SDK's init sequence for cfg's extension and starts the
// subscribe socket in the background (its first connect is reported as a
// SocketState{Up: true} event). ctx bounds the init sequence only; the
// session then runs until Close, Logout, a runtime error or a rejected
// token.
//
// The sequence: pbx/getproduct (from Config.ProductCache when it holds the
// answer); login; extension/getpersonalglobal, in the "cn" plan mode only
// (enb_internal_client must be 1); extension/getpersonal (in the "en" plan
// mode the user agent's client flag must be 1). A disabled flag is a
// *RuntimeError wrapping ErrLinkusDisabled (-106). Any failure after the
// login logs out (best effort) before Open returns the error. The SDK's
// licenseservice/get and getregisterinfo, and getpersonalglobal in the
// "en" plan mode, are skipped: the package doc says why ("Requests per
// login").
func Open(ctx context.Context, cfg Config) (*Session, error) {
	c, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	if c.cfg.Username == "" || c.cfg.Secret == "" {
		return nil, fmt.Errorf("%w: Username and Secret are required", ErrInvalidConfig)
	}
	s, err := start(ctx, c)
	if err != nil {
		c.CloseIdleConnections()
		return nil, err
	}
	return s, nil
}

func start(ctx context.Context, c *Client) (*Session, error) {
	product, err := c.product(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.Login(ctx); err != nil {
		return nil, err
	}
	personal, err := afterLogin(ctx, c, product)
	if err != nil {
		c.logoutQuietly(ctx)
		return nil, err
	}
	s := &Session{
		client:    c,
		cfg:       c.cfg,
		log:       c.log,
		product:   product,
		personal:  personal,
		loginTime: c.LoginTime(),
		topics:    Topics(product.Version, c.cfg.UserAgent),
		rules:     runtimeRules{username: c.cfg.Username, plan: product.PlanMode(), userAgent: c.cfg.UserAgent},
		events:    newEventQueue(c.cfg.EventBuffer, c.cfg.Hooks.EventsReady),
		done:      make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.log.Info("pbx session open", "host", c.Host(), "version", product.Version, "plan", product.PlanMode(), "user_agent", c.cfg.UserAgent, "extension_id", personal.ID)
	s.wg.Add(1)
	go s.run(s.ctx)
	return s, nil
}

// afterLogin runs the init steps that need the token.
// The flags compare with 1 as the SDK's JavaScript == does (jsIsOne): 1,
// 1.0, "1" and true enable.
func afterLogin(ctx context.Context, c *Client, product Product) (Personal, error) {
	if product.PlanMode() == "cn" {
		global, err := c.getPersonalGlobal(ctx)
		if err != nil {
			return Personal{}, err
		}
		if !jsIsOne(global.flags["enb_internal_client"]) {
			return Personal{}, &RuntimeError{SDK: ErrLinkusDisabled, Detail: "enb_internal_client is not 1 (cn plan)"}
		}
	}
	personal, err := c.getPersonal(ctx)
	if err != nil {
		return Personal{}, err
	}
	if product.PlanMode() == "en" {
		name := "enb_web_client"
		if c.cfg.UserAgent == UserAgentWebPC {
			name = "enb_desktop_client"
		}
		if !jsIsOne(personal.flags[name]) {
			return Personal{}, &RuntimeError{SDK: ErrLinkusDisabled, Detail: fmt.Sprintf("%s is not 1 (en plan, %s)", name, c.cfg.UserAgent)}
		}
	}
	return *personal.Extension, nil
}

// Extension returns who the session is logged in as.
func (s *Session) Extension() Extension { return s.personal.Extension }

// Personal returns the extension's getpersonal answer as of Open.
func (s *Session) Personal() Personal { return s.personal }

// Product returns the PBX's getproduct answer: as of Open, or as of the
// last socket open after the PBX's product was read again.
func (s *Session) Product() Product {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.product
}

// Host returns the PBX's host[:port].
func (s *Session) Host() string { return s.client.Host() }

// LoginTime returns when the session's login succeeded, by the PBX's clock:
// the login answer's Date header when present and parseable (to the
// second), else the local clock at that moment. A record the PBX stamps
// later happened after the login, which is what "from now on" means to a
// first start.
func (s *Session) LoginTime() time.Time { return s.loginTime }

// Topics returns the topic list the session subscribes with.
func (s *Session) Topics() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.topics...)
}

// Next takes the session's next event, in socket order: *SocketState,
// *CDRChanged, *Notice or *Overflow. When none waits it returns nil, with
// open true while the session runs (wait on Ready) and false once it has
// ended and its last event was taken (Err is set by then). At most
// Config.EventBuffer events wait; the package doc says what happens to
// the others ("Slow-consumer policy").
func (s *Session) Next() (ev Event, open bool) { return s.events.pop() }

// Ready receives a value when events may wait to be taken with Next (one
// value for any number of them: take until Next returns nil), and is
// closed once the session has ended, so that a consumer waiting on it
// learns of the end. A consumer that selects on Ready and then drains Next
// never misses an event.
func (s *Session) Ready() <-chan struct{} { return s.events.ready }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, nil while it runs: a *RuntimeError
// (wrapping ErrLinkusDisabled, ErrLoggedInElsewhere, ErrExtensionDeleted,
// ErrReLogin or ErrSDKPlanDisabled), an error wrapping ErrTokenRejected (the
// token probe, or an API call of the session, found the token refused), or
// ErrClosed.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// CDRQuery runs a CDR query; see Client.SearchPersonal. An answer that
// rejects the token (IsTokenRejected) also ends the session, with an Err
// wrapping ErrTokenRejected, as the socket's token probe would: the socket
// may well stay up while the API refuses the token, and only a new login
// cures that. The caller gets the PBX's error all the same.
func (s *Session) CDRQuery(ctx context.Context, q CDRQuery) (*CDRResult, error) {
	res, err := s.client.SearchPersonal(ctx, q)
	s.checkToken(err)
	return res, err
}

// checkToken ends the session if err, the result of one of its API calls,
// says the PBX refused the token.
func (s *Session) checkToken(err error) {
	if IsTokenRejected(err) {
		s.endWith(tokenRejected(err))
	}
}

// endWith ends the session with err as its Err, from any goroutine. The
// first reason wins; after Close it does nothing.
func (s *Session) endWith(err error) {
	s.mu.Lock()
	if s.ending != nil || s.ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	s.ending = err
	s.mu.Unlock()
	s.log.Warn("pbx API refused the token: ending the session", "err", err)
	s.cancel()
}

// Logout ends the session as Close does, then logs its token out of the PBX.
// (Close alone leaves the login in place; the SDK's destroy does too.)
func (s *Session) Logout(ctx context.Context) error {
	_ = s.Close()
	return s.client.Logout(ctx)
}

// Close stops the socket and every goroutine of the session and waits for
// them. It does not log out. It is idempotent and returns nil.
func (s *Session) Close() error {
	s.cancel()
	s.wg.Wait()
	s.client.CloseIdleConnections()
	return nil
}

// run is the session's goroutine: it keeps the socket up and, when the
// session ends, records why and closes the events and Done.
//
// Its frames, and those of keepSocket and serve, stay on the goroutine's
// stack while it waits for the next frame, for as long as the socket
// lives: they are kept small, with the work between reads in helpers, so
// that the stack of an idle socket (about 3 KiB in use, TLS and WebSocket
// reads included) fits in 8 KiB. The runtime halves a stack only while
// less than a quarter of it is in use: with 4.7 KiB in use it stayed at
// 16 KiB per idle extension.
func (s *Session) run(ctx context.Context) {
	defer s.wg.Done()
	s.end(ctx, s.keepSocket(ctx))
}

// end records why the session ended (err, nil when ctx ended) and closes
// the events and Done.
func (s *Session) end(ctx context.Context, err error) {
	if err == nil {
		s.mu.Lock()
		err = s.ending
		s.mu.Unlock()
	}
	if err == nil {
		err = ErrClosed
	}
	var rt *RuntimeError
	if errors.As(err, &rt) && rt.SDK == ErrLinkusDisabled {
		// The SDK logs out on -106 (and only there).
		s.client.logoutQuietly(ctx)
	}
	if s.dropped > 0 {
		s.events.push(&Overflow{Dropped: s.dropped})
	}
	for kind, n := range s.client.warns.Flush() {
		s.log.Warn("pbx warnings suppressed", "kind", kind, "suppressed", n)
	}
	if err == ErrClosed {
		s.log.Info("pbx session closed")
	} else {
		s.log.Warn("pbx session ended", "err", err)
	}
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.done)
	s.events.close()
}
