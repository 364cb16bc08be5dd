// Package pbxtest runs an in-process Yeastar P-Series PBX for tests, in the
// spirit of net/http/httptest: the HTTP API and the subscribe socket that the
// Linkus browser SDK speaks (see shared/reference/linkus-protocol.md), over
// real TLS and real WebSockets.
//
// It is an independent implementation of the wire protocol, and a strict one:
// it accepts only what the reference says a client sends, so that code tested
// against it also works against a PBX written from the same reference. Among
// its checks:
//   - login takes exactly the SDK's body; a login of an extension that still
//     has live sockets knocks the earlier login out, as a real PBX does: its
//     subscribed sockets receive 10000 {"username":ext} and its tokens are
//     revoked (see KnockOuts);
//   - access tokens contain '+' and '/', so a client must escape the token in
//     the socket URL;
//   - getproduct's host must be the request's host as the SDK's URL.host
//     gives it: lower case, without the default port;
//   - cdr/searchpersonal refuses a parameter the SDK does not send, a bad
//     value and a repeated parameter (errcode 40002);
//   - a socket must send exactly the topic list of the PBX's firmware
//     (Options.Version) and the login's user agent, and only the SDK's
//     frames; anything else closes it with 1008 policy violation.
//
// Fault knobs (Kick, ForceReLogin, DropSockets, FailEndpoint, ...) inject the
// events a real PBX produces. Hostile knobs make it a PBX that differs from
// the reference's happy path, as firmware versions do: SetPageCap,
// SetTotalNumber, SetRepeatLastPage and SetSamePage for paging,
// SetNumberStyle for integers sent as strings or floats, SetEchoPassword for
// an error text that echoes the credential, SetEndlessHandshake for an
// upgrade answer that never ends, RejectAPITokens for an API that refuses a
// token its socket still takes, Flood for a burst of frames, and
// NotifySIPRegistration for a body full of credentials. Observation methods
// (Logins, KnockOuts, TopicLists, LiveSockets, ...) let tests assert on what
// the client did.
//
// The OpenAPI (openapi.go) mints tokens and signatures and lists
// extensions; its event socket (events.go) pushes the events of live calls
// (StartCall, AnswerCall, Hold, Hangup, ... or the call control endpoints of
// callctl.go; Server.Call's finished calls too), with EventQuirks for the
// ways a firmware may differ.
package pbxtest

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// writeTimeout bounds every write to a socket, so that a client that
	// stops reading costs a fault knob at most this long, never forever.
	writeTimeout = 5 * time.Second
	// maxFrameSize is the read limit on incoming frames and request bodies:
	// the SDK sends nothing close to it.
	maxFrameSize = 64 << 10
)

// Options configures a Server. The zero value is a usable "en" plan PBX on a
// loopback port.
type Options struct {
	Listen       string       // listen address; default "127.0.0.1:0"
	Hosts        []string     // extra names or IPs for the certificate; 127.0.0.1, ::1 and localhost are always in it
	Version      string       // firmware version that getproduct reports; default "37.12.0.10"
	BaseOEMID    int          // getproduct base_oem_id: 0 is the "en" plan (default), 1 the "cn" plan
	PlatformName string       // getproduct platform_name; default "p_series" ("p_cloudpbx" marks a cloud PBX)
	Logger       *slog.Logger // default: discard
}

// Server is a running simulated PBX. All its methods are safe for concurrent
// use.
type Server struct {
	opts     Options
	log      *slog.Logger
	url      string
	certs    *certificates
	hs       *http.Server
	routes   map[string]route
	upgrader websocket.Upgrader

	served    chan struct{} // closed when hs.Serve has returned
	done      chan struct{} // closed by Close: wakes delayed answers
	closeOnce sync.Once
	connWG    sync.WaitGroup // HTTP connections, until closed or hijacked
	sockWG    sync.WaitGroup // subscribe handlers, from before the upgrade to the socket's end

	mu          sync.Mutex
	closed      bool
	oa          *openAPIState // the OpenAPI (openapi.go); nil until first used
	ls          *liveState    // the event socket and live calls (events.go); nil until first used
	exts        map[string]*extension
	nextExtID   int
	nextCDRID   int
	issued      []string                        // every Linkus access token handed out (IssuedCredentials)
	tokens      map[string]tokenInfo            // by access token
	sockets     map[string]map[*socket]struct{} // live sockets by extension number
	sdkDisabled bool
	refuseWS    bool
	faults      map[string]fault // by API path
	requests    map[string]int   // by URL path
	activity    map[string]*activity
	quirks      quirks // the hostile knobs' settings, see hostile.go
	version     string // the firmware: Options.Version until SetVersion
}

// activity is what happened per extension number. It is kept apart from the
// extension so that it survives DeleteExtension: tests look at it afterwards.
type activity struct {
	logins, logouts int
	live, maxLive   int
	resumed         int // sockets opened on a resumed TLS session
	heartbeats      int
	topicLists      [][]int
	stallHeartbeats bool
	rejectAPI       bool // RejectAPITokens
	knockOuts       int
}

// fault is an injected answer for one API path.
type fault struct {
	errcode int
	errmsg  string
	delay   time.Duration
}

// NewServer starts a PBX listening on opts.Listen with a freshly generated
// certificate. Close it when done.
func NewServer(opts Options) (*Server, error) {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Version == "" {
		opts.Version = "37.12.0.10"
	}
	if opts.PlatformName == "" {
		opts.PlatformName = "p_series"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	certs, err := newCertificates(opts.Hosts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:     opts,
		log:      log,
		url:      "https://" + ln.Addr().String(),
		certs:    certs,
		served:   make(chan struct{}),
		done:     make(chan struct{}),
		exts:     map[string]*extension{},
		tokens:   map[string]tokenInfo{},
		sockets:  map[string]map[*socket]struct{}{},
		faults:   map[string]fault{},
		requests: map[string]int{},
		activity: map[string]*activity{},
		version:  opts.Version,
		upgrader: websocket.Upgrader{
			// The SDK runs in browsers on the customer's own origin, so a PBX
			// cannot restrict origins; gorilla's same-origin default would.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	s.routes = s.apiRoutes()
	s.hs = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState:         s.trackConn,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // no HTTP/2: WebSockets need HTTP/1.1
	}
	go func() {
		defer close(s.served)
		if err := s.hs.Serve(tls.NewListener(ln, certs.serverConfig())); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pbxtest: serve", "err", err)
		}
	}()
	return s, nil
}

// URL returns the PBX's base URL, "https://127.0.0.1:PORT" by default: what
// the SDK calls pbxURL.
func (s *Server) URL() string { return s.url }

// Close stops the listener, closes every HTTP connection and every subscribe
// socket (with a 1001 "going away" close frame), and waits until all of the
// server's goroutines have ended. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		socks := s.socketsWhere(func(*socket) bool { return true })
		s.mu.Unlock()

		_ = s.hs.Close()
		<-s.served // after Serve returns no new connection can be tracked
		close(s.done)
		for _, c := range socks {
			c.shutdown(websocket.CloseGoingAway, "PBX shutting down")
		}
		s.connWG.Wait()
		s.sockWG.Wait()
	})
}

// trackConn counts HTTP connections so that Close can wait for their
// goroutines: http.Server.Close does not. A hijacked connection is handed
// over to sockWG by the subscribe handler.
func (s *Server) trackConn(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		s.connWG.Add(1)
	case http.StateHijacked, http.StateClosed:
		s.connWG.Done()
	}
}

// activityOf returns the activity record of ext, creating it. s.mu must be
// held.
func (s *Server) activityOf(ext string) *activity {
	a := s.activity[ext]
	if a == nil {
		a = &activity{}
		s.activity[ext] = a
	}
	return a
}

// snapshot copies ext's activity under the lock; an unknown extension has
// none.
func (s *Server) snapshot(ext string) activity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.activity[ext]; a != nil {
		return *a
	}
	return activity{}
}

// Logins returns how many logins of ext succeeded.
func (s *Server) Logins(ext string) int { return s.snapshot(ext).logins }

// Logouts returns how many logouts ext made with a valid token.
func (s *Server) Logouts(ext string) int { return s.snapshot(ext).logouts }

// LiveSockets returns how many subscribe sockets of ext are open now.
func (s *Server) LiveSockets(ext string) int { return s.snapshot(ext).live }

// MaxLiveSockets returns the most subscribe sockets ext ever had open at
// once: a bridge should never have more than one.
func (s *Server) MaxLiveSockets(ext string) int { return s.snapshot(ext).maxLive }

// ResumedSockets returns how many subscribe sockets of ext were opened on
// a resumed TLS session (no certificate sent, no signature made).
func (s *Server) ResumedSockets(ext string) int { return s.snapshot(ext).resumed }

// KnockOuts returns how many logins of ext knocked an earlier login out:
// succeeded while ext still had live subscribe sockets, which then received
// a 10000 frame and lost their tokens. A bridge should never knock itself
// out. A socket counts as live until the PBX has seen it end, so a client
// that closes its socket with a close handshake before it logs in again is
// not knocked out; one that only drops the connection may be.
func (s *Server) KnockOuts(ext string) int { return s.snapshot(ext).knockOuts }

// Heartbeats returns how many "heartbeat" frames ext's sockets sent,
// answered or not.
func (s *Server) Heartbeats(ext string) int { return s.snapshot(ext).heartbeats }

// TopicLists returns every valid topic_list that ext's sockets sent, in the
// order received.
func (s *Server) TopicLists(ext string) [][]int {
	var out [][]int
	for _, l := range s.snapshot(ext).topicLists { // recorded lists are never modified
		out = append(out, slices.Clone(l))
	}
	return out
}

// RequestCounts returns how many HTTP requests arrived, by URL path (see
// Requests).
func (s *Server) RequestCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.requests)
}

// firmware returns the version getproduct reports now.
func (s *Server) firmware() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Requests returns how many HTTP requests arrived for path (for example
// "/api/v1.0/login"), whatever their outcome, subscribe upgrades included.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}
