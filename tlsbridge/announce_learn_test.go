package tlsbridge

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// replayableServer serves a certificate of srv's key announcing next, with
// a plain crypto/tls server that keeps nothing per connection; while
// impostor holds, it presents the same certificate with another private
// key (a replay of a public certificate: its CertificateVerify fails).
func replayableServer(t *testing.T, srv *home, next *jwk.Key, impostor *atomic.Bool) string {
	t.Helper()
	id, err := NewIdentity(srv.id.Key, CertOptions{Next: []*jwk.Key{next}})
	if err != nil {
		t.Fatal(err)
	}
	real := &tls.Config{Certificates: []tls.Certificate{id.Certificate}, ClientAuth: tls.RequestClientCert}
	fake := &tls.Config{Certificates: []tls.Certificate{{Certificate: id.Certificate.Certificate, PrivateKey: mustGenerate(t, jwk.EC256).Signer()}},
		ClientAuth: tls.RequestClientCert}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if impostor != nil && impostor.Load() {
			return fake, nil
		}
		return real, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	testnet.ServeEach(t, ln, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := c.(*tls.Conn).Handshake(); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
	})
	return ln.Addr().String()
}

// A client learning a pinned host's announced keys keeps one note a leaf
// certificate, not one a handshake. crypto/tls shares one parsed
// certificate between the connections presenting the same DER while any
// of them is open; a note taken back at each handshake and made again at
// the next attached a runtime cleanup a handshake to that leaf, all kept
// while one connection to the host stayed open: memory growing without
// bound (found by review, 2026-12-05).
func TestAnnouncingKeptOnceALeaf(t *testing.T) {
	const n = 300
	cleanupsRun := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cleanups/executed:cleanups"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	settle := func() {
		for range 3 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
	}
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	addr := replayableServer(t, srv, mustGenerate(t, jwk.EC256), nil)
	cli.pin(t, addr, srv.id.Key)
	client := cli.client(t, ClientOptions{UpdateHostKeys: UpdateYes})
	dial := func() *tls.Conn {
		c, err := client.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	held := dial() // keeps the shared leaf alive
	for range n {
		dial().Close()
	}
	before := cleanupsRun()
	held.Close()
	held = nil
	settle()
	if ran := cleanupsRun() - before; ran > 10 {
		t.Errorf("%d handshakes left %d cleanups on one leaf certificate, want one", n, ran)
	}
}

// A next key is learned only where a pin for the address admits the
// host's key when the handshake completes. The note of a leaf that a pin
// once admitted is the leaf's, which crypto/tls shares between
// connections: an impostor replaying the pinned host's certificate (its
// CertificateVerify failing) left one, and the next handshake presenting
// that certificate — admitted by a question answered Once, after the
// user unpinned the key — pinned its announced key (found by review,
// 2026-12-05).
func TestAnnouncementLearnedOnlyUnderAPin(t *testing.T) {
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	next := mustGenerate(t, jwk.EC256)
	var impostor atomic.Bool
	addr := replayableServer(t, srv, next, &impostor)
	cli.pin(t, addr, srv.id.Key)
	asked := 0
	client := cli.client(t, ClientOptions{Policy: Ask, Purpose: "pool", UpdateHostKeys: UpdateYes,
		Prompt: PromptFunc(func(UnknownHost) (Answer, error) { asked++; return Once, nil })})
	ctx := context.Background()
	held, err := client.DialContext(ctx, "tcp", addr) // keeps the leaf alive; learns next
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if d := cli.host.DecidePurpose(addr, "pool", next.SPKIHash()); d.Verdict != knownhosts.Pinned {
		t.Fatalf("the pinned host's next key was not learned: %v", d.Verdict)
	}
	if _, err := cli.host.RemoveKey(addr, next.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	impostor.Store(true)
	if c, err := client.DialContext(ctx, "tcp", addr); err == nil {
		c.Close()
		t.Fatal("the impostor completed its handshake")
	}
	impostor.Store(false)
	if _, err := cli.host.RemoveKey(addr, srv.id.Key.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	cli.host.Reload()
	c, err := client.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if asked != 1 {
		t.Fatalf("asked %d times, want 1", asked)
	}
	cli.host.Reload()
	if d := cli.host.DecidePurpose(addr, "pool", next.SPKIHash()); d.Verdict == knownhosts.Pinned {
		t.Error("a host admitted Once, its key no longer pinned for the address, had its announced key pinned there")
	}
}
