package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pbx-bridge/pbx-bridge/bridge"
	"github.com/pbx-bridge/pbx-bridge/bridge/natsembed"
)

func runCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := fs.String("config", "pbx-bridge.yaml", "configuration file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// From the start: SIGHUP's default action ends the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	fc, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(stderr, fc.Log.Level, fc.Log.Format)
	return serve(ctx, *path, fc, hup, log)
}

// serve runs the bridge of fc, read from path, until ctx ends: it starts
// the embedded NATS server when no URL is configured, connects, runs the
// bridge, reloads the file on each signal of hup, and on the way out
// drains the connection and stops the server.
func serve(ctx context.Context, path string, fc *fileConfig, hup <-chan os.Signal, log *slog.Logger) error {
	url := fc.NATS.URL
	var ns *server.Server
	if url == "" {
		var err error
		ns, err = natsembed.Start(fc.NATS.Listen, fc.NATS.StoreDir)
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		url = ns.ClientURL()
		log.Info("embedded NATS server started", "url", url, "store_dir", fc.NATS.StoreDir)
	}
	nc, err := connectNATS(url, fc, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	b, err := bridge.New(nc, fc.bridgeConfig(log))
	if err != nil {
		return err
	}
	if fc.Metrics.Listen != "" {
		stopHTTP, err := serveHTTP(fc.Metrics.Listen, b.Handler(), log)
		if err != nil {
			return err
		}
		defer stopHTTP()
	}
	log.Info("pbx-bridge started", "version", version, "extensions", len(fc.Extensions),
		"discovery", fc.Discovery.Enabled, "prefix", fc.SubjectPrefix)
	rl := &reloader{path: path, b: b, log: log, running: fc}
	reloadCtx, stopReloads := context.WithCancel(ctx)
	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		rl.run(reloadCtx, hup)
	}()
	err = b.Run(ctx)
	stopReloads()
	<-reloads
	if err != nil {
		return err
	}
	drained := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
	if err := nc.Drain(); err == nil {
		select {
		case <-drained:
		case <-time.After(drainTimeout(fc)):
			log.Warn("NATS drain timed out")
		}
	}
	log.Info("pbx-bridge stopped")
	return nil
}

func connectNATS(url string, fc *fileConfig, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(fc.NATS.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Warn("NATS error", "err", err) }),
	}
	n := fc.NATS
	switch {
	case n.CredsFile != "":
		opts = append(opts, nats.UserCredentials(n.CredsFile))
	case n.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(n.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_file: %w", err)
		}
		opts = append(opts, o)
	case n.User != "":
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	case n.Token != "":
		opts = append(opts, nats.Token(n.Token))
	}
	if n.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(n.TLS.CAFile))
	}
	if n.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(n.TLS.CertFile, n.TLS.KeyFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	return nc, nil
}

// serveHTTP serves the metrics and probes on addr until the returned
// function is called.
func serveHTTP(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("metrics and probes", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// drainTimeout bounds the NATS drain at shutdown, like the bridge's own
// shutdown.
func drainTimeout(fc *fileConfig) time.Duration {
	if d := time.Duration(fc.ShutdownTimeout); d > 0 {
		return d
	}
	return bridge.DefaultShutdownTimeout
}
