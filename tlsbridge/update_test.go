package tlsbridge

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// announcingServer starts a server whose certificate announces next.
func announcingServer(t *testing.T, next *jwk.Key) (*home, *testServer) {
	t.Helper()
	srv := newHome(t, jwk.EC256)
	id, err := NewIdentity(srv.id.Key, CertOptions{Next: []*jwk.Key{next}})
	if err != nil {
		t.Fatal(err)
	}
	srv.id = id
	return srv, startServer(t, srv, ServerOptions{})
}

// learnTrip is roundTrip with a configuration of client for addr, then
// LearnAnnounced, as a caller completing its own handshakes does.
func learnTrip(t *testing.T, client *Client, addr string) error {
	t.Helper()
	cs, err := roundTrip(addr, mustConfig(t, client, addr))
	if err == nil {
		client.LearnAnnounced(addr, cs)
	}
	return err
}

// Under UpdateHostKeys yes, a client that verified a pinned key pins the
// key that host announces beside it, logged; the next connection learns
// nothing new. Under no, with the Insecure policy, or for a host that was
// not pinned (accepted by the policy), nothing is pinned.
func TestUpdateHostKeys(t *testing.T) {
	next := mustGenerate(t, jwk.EC256)
	srv, ts := announcingServer(t, next)
	connect := func(cl *home, opts ClientOptions) {
		t.Helper()
		srv.authorize(t, "c"+cl.id.Key.KeyID()[:4], cl.id.Key)
		if err := learnTrip(t, cl.client(t, opts), ts.addr()); err != nil {
			t.Fatal(err)
		}
	}
	pinsOfNext := func(cl *home) bool {
		cl.host.Reload()
		return cl.host.Decide(ts.addr(), next.SPKIHash()).Verdict == knownhosts.Pinned
	}

	var log testlog.Buffer
	yes := newHome(t, jwk.EC256)
	yes.pin(t, ts.addr(), srv.id.Key)
	connect(yes, ClientOptions{UpdateHostKeys: UpdateYes, Logger: log.Logger()})
	if !pinsOfNext(yes) {
		t.Fatal("the announced key was not pinned")
	}
	if yes.host.Decide(ts.addr(), srv.id.Key.SPKIHash()).Verdict != knownhosts.Pinned {
		t.Fatal("the current pin was replaced")
	}
	if !strings.Contains(log.String(), `msg="pinned the next key a host announces" addr=`+ts.addr()+" fingerprint="+next.Fingerprint()+" current="+srv.id.Key.Fingerprint()) {
		t.Errorf("log:\n%s", log.String())
	}
	before := log.String()
	connect(yes, ClientOptions{UpdateHostKeys: UpdateYes, Logger: log.Logger()})
	if log.String() != before {
		t.Errorf("a second connection logged:\n%s", strings.TrimPrefix(log.String(), before))
	}

	no := newHome(t, jwk.EC256)
	no.pin(t, ts.addr(), srv.id.Key)
	connect(no, ClientOptions{UpdateHostKeys: UpdateNo})
	if pinsOfNext(no) {
		t.Error("UpdateNo pinned the announced key")
	}
	for name, opts := range map[string]ClientOptions{
		"insecure":   {Policy: Insecure, UpdateHostKeys: UpdateYes},
		"accept-new": {Policy: AcceptNew, UpdateHostKeys: UpdateYes},
	} {
		cl := newHome(t, jwk.EC256)
		connect(cl, opts)
		if pinsOfNext(cl) {
			t.Errorf("%s: a host that was not pinned had its announced key pinned", name)
		}
	}

	// A prompt that cannot be asked about announcements means no.
	ask := newHome(t, jwk.EC256)
	ask.pin(t, ts.addr(), srv.id.Key)
	connect(ask, ClientOptions{UpdateHostKeys: UpdateAsk, Prompt: NonInteractive{}})
	if pinsOfNext(ask) {
		t.Error("UpdateAsk without a prompt to ask pinned the announced key")
	}
}

// A revoked key is never pinned from an announcement, and the connection
// to the host goes on.
func TestUpdateHostKeysRevokedNext(t *testing.T) {
	next := mustGenerate(t, jwk.EC256)
	srv, ts := announcingServer(t, next)
	cl := newHome(t, jwk.EC256)
	srv.authorize(t, "c", cl.id.Key)
	cl.pin(t, ts.addr(), srv.id.Key)
	cl.revoke(t, next)
	var log testlog.Buffer
	if err := learnTrip(t, cl.client(t, ClientOptions{UpdateHostKeys: UpdateYes, Logger: log.Logger()}), ts.addr()); err != nil {
		t.Fatal(err)
	}
	if d := cl.host.Decide(ts.addr(), next.SPKIHash()); d.Verdict != knownhosts.Revoked {
		t.Fatalf("the revoked next key: %v", d.Verdict)
	}
	if !strings.Contains(log.String(), "could not pin the next key a host announces") {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestParseUpdateHostKeys(t *testing.T) {
	for _, s := range []string{"yes", "ask", "no"} {
		u, err := ParseUpdateHostKeys(s)
		if err != nil || u.String() != s {
			t.Errorf("%s: %v, %v", s, u, err)
		}
	}
	if _, err := ParseUpdateHostKeys("accept-new"); err == nil {
		t.Error("accept-new is not an UpdateHostKeys value")
	}
}

// freshAnnouncer is an identity whose certificate announces MaxAnnounced
// new keys at each handshake, as a pinned host may make it.
type freshAnnouncer struct {
	t   *testing.T
	key *jwk.Key
}

func (f *freshAnnouncer) CurrentIdentity() *Identity {
	next := make([]*jwk.Key, MaxAnnounced)
	for i := range next {
		next[i] = mustGenerate(f.t, jwk.Ed25519)
	}
	id, err := NewIdentity(f.key, CertOptions{Next: next})
	if err != nil {
		f.t.Error(err)
	}
	return id
}

// freshAnnouncerPinned serves a freshAnnouncer on 127.0.0.1, and returns
// its address and a client home that pins its key there.
func freshAnnouncerPinned(t *testing.T) (addr string, cl *home) {
	t.Helper()
	key := mustGenerate(t, jwk.EC256)
	srv, err := NewServer(&freshAnnouncer{t: t, key: key}, ServerOptions{Clients: newHome(t, jwk.EC256).auth, AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	testnet.ServeEach(t, ln, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "ok\n")
	})
	addr, cl = ln.Addr().String(), newHome(t, jwk.EC256)
	cl.pin(t, addr, key)
	return addr, cl
}

// A pinned host that announces four new keys at every connection gets no
// more keys pinned for its address than one certificate announces — its
// key and MaxAnnounced next ones — however many connections it sees
// (found by review: each connection pinned four more, a file each in
// trusted_hosts.d, without end); the refusal is logged once per
// rotationRetry, not at each connection.
func TestUpdateHostKeysBounded(t *testing.T) {
	addr, cl := freshAnnouncerPinned(t)
	var log testlog.Buffer
	client := cl.client(t, ClientOptions{UpdateHostKeys: UpdateYes, Logger: log.Logger()})
	for range 4 {
		if err := learnTrip(t, client, addr); err != nil {
			t.Fatal(err)
		}
	}
	cl.host.Reload()
	if n := cl.host.KeysPinnedAt(addr); n != 1+MaxAnnounced {
		t.Errorf("%d keys pinned for the address, want %d", n, 1+MaxAnnounced)
	}
	if n := strings.Count(log.String(), "not pinning some next keys"); n != 1 {
		t.Errorf("%d refusals logged, want 1 (the host is not tried again for %v):\n%s", n, rotationRetry, log.String())
	}
}
