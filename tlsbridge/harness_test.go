package tlsbridge

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// A home holds one side's identity and trust stores, in a t.TempDir().
type home struct {
	dir  string
	id   *Identity
	auth *authkeys.Store
	host *knownhosts.Store
}

func newHome(t testing.TB, typ jwk.Type) *home {
	t.Helper()
	dir := t.TempDir()
	k := mustGenerate(t, typ)
	id, err := NewIdentity(k, CertOptions{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	auth := authkeys.Load(authkeys.HomeOptions(dir))
	host := knownhosts.Load(knownhosts.HomeOptions(dir))
	return &home{dir: dir, id: id, auth: auth, host: host}
}

// authorize lets the key of other in, under name.
func (h *home) authorize(t testing.TB, name string, k *jwk.Key) {
	t.Helper()
	if _, err := h.auth.Add(k.PublicKey(), name, authkeys.AddNew); err != nil {
		t.Fatal(err)
	}
}

// revoke writes k to revoked_keys.d and reloads both stores.
func (h *home) revoke(t *testing.T, k *jwk.Key) {
	t.Helper()
	dir := filepath.Join(h.dir, "revoked_keys.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "bad.json"), k, jwk.JWK, jwk.Overwrite); err != nil {
		t.Fatal(err)
	}
	h.auth.Reload()
	h.host.Reload()
}

// testServer accepts TLS connections on 127.0.0.1, completes the handshake
// and writes "ok\n"; it records the peers it saw.
type testServer struct {
	ln    net.Listener
	srv   *Server
	mu    sync.Mutex
	peers []*Peer
	// holdOpen keeps each connection open after "ok" until the client
	// closes it (or the deadline passes).
	holdOpen atomic.Bool
}

func startServer(t *testing.T, h *home, opts ServerOptions) *testServer {
	t.Helper()
	srv := mustServer(t, h, opts)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{ln: ln, srv: srv}
	testnet.ServeEach(t, ln, func(c net.Conn) {
		tc := c.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		cs := tc.ConnectionState()
		if p, err := srv.Peer(&cs, addrOf(c)); err == nil {
			ts.mu.Lock()
			ts.peers = append(ts.peers, p)
			ts.mu.Unlock()
		}
		_, _ = io.WriteString(c, "ok\n")
		if ts.holdOpen.Load() {
			_, _ = io.Copy(io.Discard, c)
		}
	})
	return ts
}

func (ts *testServer) addr() string { return ts.ln.Addr().String() }

func (ts *testServer) lastPeer(t *testing.T) *Peer {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.peers) == 0 {
		t.Fatal("the server recorded no peer")
	}
	return ts.peers[len(ts.peers)-1]
}

// roundTrip connects with cfg and reads the server's "ok". In TLS 1.3 a
// server's refusal of the client certificate arrives after the client's
// handshake completes, so success means reading the line.
func roundTrip(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return c.ConnectionState(), err
	}
	if line != "ok\n" {
		return c.ConnectionState(), errors.New("unexpected reply " + line)
	}
	return c.ConnectionState(), nil
}

// client returns a Client of h (pins in h's store) under policy.
func (h *home) client(t *testing.T, opts ClientOptions) *Client {
	t.Helper()
	if opts.Hosts == nil {
		opts.Hosts = h.host
	}
	c, err := NewClient(h.id, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pin pins the server's key for addr in h's trusted hosts.
func (h *home) pin(t *testing.T, addr string, k *jwk.Key) {
	t.Helper()
	if _, err := h.host.Add(addr, k.PublicKey()); err != nil {
		t.Fatal(err)
	}
}

func addrFromString(s string) netip.Addr { return netip.MustParseAddr(s) }

// mustConfig is c.TLSConfig(addr) for an address that must be good.
func mustConfig(t testing.TB, c *Client, addr string) *tls.Config {
	t.Helper()
	cfg, err := c.TLSConfig(addr)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
