// Package natsembed starts an in-process NATS server with JetStream: the
// single-binary setup (no NATS URL configured), the demo and the tests. It
// is a package of its own so that importing package bridge does not link a
// whole NATS server into a program that connects to one.
package natsembed

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start starts an in-process NATS server with JetStream, for the
// single-binary setup (no NATS URL configured), the demo and the tests.
// listen is host:port (port 0 or -1 picks a free one); storeDir holds JetStream's
// data and should survive restarts for the cursors to.
func Start(listen, storeDir string) (*server.Server, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats listen %q: %w", listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < -1 || p > 65535 {
		return nil, fmt.Errorf("embedded nats listen %q: bad port", listen)
	}
	if p == 0 {
		p = server.RANDOM_PORT // nats-server reads 0 as its default, 4222
	} else if p > 0 {
		// nats-server with NoLog only says "not ready"; find out why first.
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats cannot listen on %s: %w", listen, err)
		}
		_ = ln.Close()
	}
	opts := &server.Options{
		ServerName: "pbx-bridge-embedded",
		Host:       host,
		Port:       p,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
		NoLog:      true,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready on %s", listen)
	}
	return ns, nil
}
