package enroll

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// home is one side of a test: a keytool home directory and its identity.
type home struct {
	dir string
	id  *tlsbridge.Identity
}

func newHome(t testing.TB) *home {
	t.Helper()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &home{dir: dir, id: id}
}

func (h *home) key() *jwk.Key { return h.id.Key }

func (h *home) hosts(t testing.TB) *knownhosts.Store {
	t.Helper()
	s := knownhosts.Load(knownhosts.HomeOptions(h.dir))
	return s
}

func (h *home) clients(t testing.TB) *authkeys.Store {
	t.Helper()
	s := authkeys.Load(authkeys.HomeOptions(h.dir))
	return s
}

// invite makes an invitation in h for addr.
func (h *home) invite(t testing.TB, name string, addrs ...string) Token {
	t.Helper()
	_, tok, err := NewInvite(InvitesDir(h.dir), h.key(), InviteOptions{Name: name, Addresses: addrs})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// syncBuffer is the module's one log buffer for tests.
type syncBuffer = testlog.Buffer

// server is an enrollment server for tests: a tlsbridge.Server in
// AllowUnknown mode on 127.0.0.1, with the enrollment handler on Path and
// "hello NAME" for authenticated clients elsewhere.
type server struct {
	addr    string
	log     *syncBuffer
	handler *Handler
}

type serverConfig struct {
	id       *tlsbridge.Identity // the key presented; default the home's
	limits   Limits
	now      func() time.Time
	conn     bool // serve raw connections through ServeConn, as keytool proxy does
	noEnroll bool // AllowUnknown off: the server does not serve enrollment
	// wrap, if set, is middleware in front of WithEnrollment (HTTP only).
	wrap func(http.Handler) http.Handler
	// store, if set, is what the handler adds keys to, given the home's
	// authorized keys (tests: a write that fails).
	store func(ClientStore) ClientStore
}

func startServer(t testing.TB, h *home, cfg serverConfig) *server {
	t.Helper()
	id := cfg.id
	if id == nil {
		id = h.id
	}
	clients := h.clients(t)
	srv, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: clients, AllowUnknown: !cfg.noEnroll})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	var adds ClientStore = clients
	if cfg.store != nil {
		adds = cfg.store(clients)
	}
	handler, err := NewHandler(HandlerOptions{
		Dir: InvitesDir(h.dir), Clients: adds, ServerKey: id.Key,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Limits: cfg.limits, Now: cfg.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", tlsbridge.PeerFromContext(r.Context()).Name())
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if cfg.conn {
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
					serveProxyLike(ctx, srv, c.(*tls.Conn), handler)
				}()
			}
		}()
	} else {
		routes := WithEnrollment(srv, handler, app)
		if cfg.wrap != nil {
			routes = cfg.wrap(routes)
		}
		hs := &http.Server{Handler: routes, ConnContext: tlsbridge.ConnContext}
		wg.Add(1)
		go func() { defer wg.Done(); _ = hs.Serve(ln) }()
		t.Cleanup(func() { hs.Close() })
	}
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	return &server{addr: ln.Addr().String(), log: logs, handler: handler}
}

// serveProxyLike is what keytool proxy --enroll does with a connection:
// authenticated clients get the service (here a greeting), the others the
// enrollment endpoint.
func serveProxyLike(ctx context.Context, srv *tlsbridge.Server, c *tls.Conn, h http.Handler) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.HandshakeContext(ctx); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	cs := c.ConnectionState()
	p, err := srv.Peer(&cs, netipOf(c.RemoteAddr()))
	switch {
	case err == nil && p.Authenticated():
		fmt.Fprintf(c, "hello %s\n", p.Name())
	case err == nil && p.MayEnroll():
		_ = ServeConn(ctx, c, h)
	}
}

// snapshot is every file under a directory, with its mode and a hash of
// its content: "nothing written" means equal snapshots.
func snapshot(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".keytool.lock" {
			return nil // the writers' lock (keydir), made empty by the first writer: no content of the home
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", strings.TrimPrefix(p, dir), fi.Mode())
		if !d.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// unchanged fails the test if dir differs from its snapshot before.
func unchanged(t testing.TB, dir, before string) {
	t.Helper()
	if after := snapshot(t, dir); after != before {
		t.Errorf("%s changed:\nbefore:\n%s\nafter:\n%s", dir, before, after)
	}
}

// closedAddr returns a 127.0.0.1 address nobody listens on, for the
// whole test (testnet.RefusedAddr).
func closedAddr(t testing.TB) string { return testnet.RefusedAddr(t) }

// join runs Join from client c with its own trusted hosts.
func (c *home) join(t testing.TB, tok Token) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return Join(ctx, c.id, tok, c.hosts(t), nil)
}

// greet connects as an authenticated client, with strict host checking
// against c's pins, and returns the server's greeting.
func (c *home) greet(t testing.TB, addr string, conn bool) (string, error) {
	t.Helper()
	cl, err := tlsbridge.NewClient(c.id, tlsbridge.ClientOptions{Hosts: c.hosts(t), Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if conn {
		tc, err := cl.DialContext(ctx, "tcp", addr)
		if err != nil {
			return "", err
		}
		defer tc.Close()
		b, err := io.ReadAll(tc)
		return string(b), err
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/", nil)
	tr := cl.Transport()
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), errors.New(resp.Status)
	}
	return string(b), nil
}

func netipOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// get makes a GET request as c, checking the server against c's pins.
func (c *home) get(t testing.TB, addr, path string) (string, error) {
	t.Helper()
	cl, err := tlsbridge.NewClient(c.id, tlsbridge.ClientOptions{Hosts: c.hosts(t), Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	tr := cl.Transport()
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), errors.New(resp.Status)
	}
	return string(b), nil
}
