package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// Every socket in these tests is on 127.0.0.1, every port picked by the
// system.

// side is one party's identity and trust stores, in a t.TempDir().
type side struct {
	id    *tlsbridge.Identity
	auth  *authkeys.Store
	hosts *knownhosts.Store
}

func newSide(t testing.TB) *side {
	t.Helper()
	dir := t.TempDir()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	auth := authkeys.Load(authkeys.HomeOptions(dir))
	hosts := knownhosts.Load(knownhosts.HomeOptions(dir))
	return &side{id: id, auth: auth, hosts: hosts}
}

// authorize lets other's key in, under name.
func (s *side) authorize(t testing.TB, name string, other *side) {
	t.Helper()
	if _, err := s.auth.Add(other.id.Key.PublicKey(), name, authkeys.AddNew); err != nil {
		t.Fatal(err)
	}
}

// pin trusts other's key for addr.
func (s *side) pin(t testing.TB, addr string, other *side) {
	t.Helper()
	if _, err := s.hosts.Add(addr, other.id.Key.PublicKey()); err != nil {
		t.Fatal(err)
	}
}

// tlsServer is s as a tlsbridge server.
func (s *side) tlsServer(t testing.TB, opts tlsbridge.ServerOptions) *tlsbridge.Server {
	t.Helper()
	opts.Clients = s.auth
	srv, err := tlsbridge.NewServer(s.id, opts)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// tlsClient is s as a tlsbridge client under the Strict policy: only
// pinned keys connect.
func (s *side) tlsClient(t testing.TB) *tlsbridge.Client {
	t.Helper()
	c, err := tlsbridge.NewClient(s.id, tlsbridge.ClientOptions{Hosts: s.hosts, Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logBuffer collects a proxy's log lines (the module's one test log
// buffer), and waits for them.
type logBuffer struct{ testlog.Buffer }

func (b *logBuffer) logger() *slog.Logger { return b.Logger() }

// waitFor waits until a line matches pattern, and returns its submatches.
// Its 30 s are a bound for a line that never comes, not a pace: a line
// the test is sure to cause may come late on a loaded machine.
func (b *logBuffer) waitFor(t testing.TB, pattern string) []string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line matches %q:\n%s", pattern, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echoTarget is a plain TCP server that echoes each connection, then
// closes its side when the client has closed its own.
func echoTarget(t testing.TB) string {
	t.Helper()
	ln := listen(t)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.Copy(c, c); err == nil {
					_ = c.(*net.TCPConn).CloseWrite()
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// proxyUnderTest is a running Server or Client and what Serve returned.
type proxyUnderTest interface {
	Serve(ctx context.Context, ln net.Listener) error
	Close() error
}

// serving is a Serve call running in a goroutine.
type serving struct {
	done chan struct{}
	err  error // Serve's result, once done is closed
}

// wait returns what Serve returned, or fails the test if it does not
// return: its 30 s are a bound on a hang, not a pace.
func (s *serving) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return in 30 s")
		return nil
	}
}

// serve runs p on a new listener until the test ends (then Close), and
// returns the address.
func serve(t testing.TB, ctx context.Context, p proxyUnderTest) (string, *serving) {
	t.Helper()
	ln := listen(t)
	s := &serving{done: make(chan struct{})}
	go func() {
		s.err = p.Serve(ctx, ln)
		close(s.done)
	}()
	t.Cleanup(func() {
		p.Close()
		s.wait(t)
	})
	return ln.Addr().String(), s
}

// startServer starts a server-mode proxy of s in front of target.
func startServer(t testing.TB, s *side, target string, opts ServerOptions) (*Server, string, *logBuffer, *serving) {
	t.Helper()
	logs := &logBuffer{}
	if opts.TLS == nil {
		opts.TLS = s.tlsServer(t, tlsbridge.ServerOptions{})
	}
	opts.Target, opts.Logger = target, logs.logger()
	p, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	addr, served := serve(t, context.Background(), p)
	logs.waitFor(t, `msg=listening addr=`+regexp.QuoteMeta(addr)+` target=`+regexp.QuoteMeta(target)+` mode=server goroutines=\d+`)
	return p, addr, logs, served
}

// dialTLS connects to addr as c, pinning addr's key. Its 30 s, for the
// handshake and then for the connection's reads and writes, are bounds
// on a hang, not a pace: no test waits for them to pass (a stream that
// should end or be refused ends at once), and a loaded machine may take
// seconds for a handshake under -race.
func dialTLS(t *testing.T, c *side, addr string) *tls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := c.tlsClient(t).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	return conn
}

// halfCloseWriter is a connection whose write side closes alone.
type halfCloseWriter interface {
	io.ReadWriter
	CloseWrite() error
}

// exchange writes msg, closes the write side, and returns all that comes
// back.
func exchange(conn halfCloseWriter, msg string) (string, error) {
	if _, err := io.WriteString(conn, msg); err != nil {
		return "", err
	}
	if err := conn.CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	return string(b), err
}

// goroutines reads the goroutine count of a log line.
func goroutines(t *testing.T, logs *logBuffer, msg string) int {
	t.Helper()
	m := logs.waitFor(t, `msg=`+msg+`.* goroutines=(\d+)`)
	n, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// isTimeout tells a read that hit its deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
