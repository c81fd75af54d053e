package tlsbridge

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	homedir "github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
)

// writeKey writes k as the private key at path with mode, replacing what
// is there.
func writeKey(t *testing.T, path string, k *jwk.Key, mode os.FileMode) {
	t.Helper()
	data, err := k.MarshalPrivate(jwk.JWK)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, data, mode)
}

// writeFile replaces path by a file holding data, with mode, the way an
// editor or config management does (a new file renamed over the old).
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsEchoServer serves srv on 127.0.0.1 and echoes lines on each connection.
func tlsEchoServer(t *testing.T, srv *Server) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	testnet.ServeEach(t, ln, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		_, _ = io.Copy(c, c)
	})
	return ln.Addr().String()
}

// watchedEchoServer serves, as tlsEchoServer, a Server presenting w's
// identity, and returns its address and a client it authorizes.
func watchedEchoServer(t *testing.T, w *IdentityWatcher) (string, *home) {
	t.Helper()
	srvHome, cl := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srvHome.authorize(t, "client", cl.id.Key)
	srv, err := NewServer(w, ServerOptions{Clients: srvHome.auth})
	if err != nil {
		t.Fatal(err)
	}
	return tlsEchoServer(t, srv), cl
}

// presentedKey dials addr with cert as the client certificate, checks that
// a line echoes, and returns the open connection and the server's key.
func presentedKey(t *testing.T, addr string, cert tls.Certificate) (*tls.Conn, [32]byte) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	echo(t, c)
	return c, sha256.Sum256(c.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
}

// echo checks that a line sent on c comes back.
func echo(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A server whose key file changes presents the new key from the next
// handshake, while a connection made before keeps working; every broken
// change (a key that does not parse, a key readable by others, a
// certificate for another key) is refused with a log line and the key in
// use stays.
func TestIdentityWatcherServer(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.json")
	k1, k2, k3 := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.Ed25519)
	writeKey(t, keyFile, k1, 0o600)
	var log testlog.Buffer
	w, err := WatchHomeIdentity(context.Background(), dir, CertOptions{}, log.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	addr, cl := watchedEchoServer(t, w)
	open, got := presentedKey(t, addr, cl.id.Certificate)
	if got != k1.SPKIHash() {
		t.Fatal("the server does not present its key")
	}

	presents := func(k *jwk.Key) func() bool {
		return func() bool { _, got := presentedKey(t, addr, cl.id.Certificate); return got == k.SPKIHash() }
	}
	writeKey(t, keyFile, k2, 0o600)
	waitFor(t, "the new key in a new handshake", presents(k2))
	echo(t, open) // the connection made with k1 goes on
	if !strings.Contains(log.String(), "identity reloaded") || !strings.Contains(log.String(), "previous="+k1.Fingerprint()) {
		t.Errorf("log:\n%s", log.String())
	}

	refusals := 0
	refused := func(why string, change func()) {
		t.Helper()
		refusals++
		change()
		waitFor(t, why+" refused in the log", func() bool {
			return strings.Count(log.String(), "identity not reloaded") >= refusals
		})
		if !presents(k2)() {
			t.Fatalf("%s: the server no longer presents the key in use", why)
		}
		if err := w.Reload(); err == nil { // SIGHUP's path refuses too
			t.Fatalf("%s: Reload accepted it", why)
		}
		refusals++
	}
	refused("a key that does not parse", func() { writeFile(t, keyFile, []byte("{not a key"), 0o600) })
	refused("a key readable by others", func() { writeKey(t, keyFile, k3, 0o644) })
	other, err := NewIdentity(mustGenerate(t, jwk.EC256), CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refused("a certificate for another key", func() {
		// The certificate first: the key it does not match is never
		// valid on its own meanwhile.
		writeFile(t, filepath.Join(dir, "cert.pem"), other.CertificatePEM(), 0o644)
		writeKey(t, keyFile, k3, 0o600)
	})
	if err := os.Remove(filepath.Join(dir, "cert.pem")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fixed identity in a new handshake", presents(k3))
	echo(t, open)
}

// A client whose key file changes presents the new key to the server from
// its next connection.
func TestIdentityWatcherClient(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.json")
	k1, k2 := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	writeKey(t, keyFile, k1, 0o600)
	var log testlog.Buffer
	w, err := WatchHomeIdentity(context.Background(), dir, CertOptions{}, log.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	srvHome := newHome(t, jwk.EC256)
	srvHome.authorize(t, "old", k1)
	srvHome.authorize(t, "new", k2)
	ts := startServer(t, srvHome, ServerOptions{})
	c, err := NewClient(w, ClientOptions{Hosts: srvHome.host, Policy: Insecure, Logger: log.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(ts.addr(), mustConfig(t, c, ts.addr())); err != nil {
		t.Fatal(err)
	}
	if ts.lastPeer(t).Name() != "old" {
		t.Fatalf("peer %q", ts.lastPeer(t).Name())
	}
	writeKey(t, keyFile, k2, 0o600)
	waitFor(t, "the client's new key", func() bool {
		_, err := roundTrip(ts.addr(), mustConfig(t, c, ts.addr()))
		return err == nil && ts.lastPeer(t).Name() == "new"
	})
}

// WatchIdentity refuses to start on an identity that does not load.
func TestWatchIdentityFirstLoadFails(t *testing.T) {
	if _, err := WatchHomeIdentity(context.Background(), t.TempDir(), CertOptions{}, nil); err == nil {
		t.Fatal("an empty home gave an identity")
	}
}

// A next key written beside a watched identity is announced from the next
// handshake on; a next key that does not load is refused like a broken
// key (the identity in use stays).
func TestIdentityWatcherAnnouncesNextKey(t *testing.T) {
	dir := t.TempDir()
	k, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	writeKey(t, filepath.Join(dir, "key.json"), k, 0o600)
	var log testlog.Buffer
	w, err := WatchHomeIdentity(context.Background(), dir, CertOptions{}, log.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if a := w.CurrentIdentity().Announced(); len(a) != 0 {
		t.Fatalf("announces %v without a next key", a)
	}
	writeKey(t, filepath.Join(dir, "key.next.json"), next, 0o644)
	waitFor(t, "a next key readable by others refused", func() bool { return strings.Contains(log.String(), "identity not reloaded") })
	writeKey(t, filepath.Join(dir, "key.next.json"), next, 0o600)
	waitFor(t, "the next key announced", func() bool {
		a := w.CurrentIdentity().Announced()
		return len(a) == 1 && a[0].Equal(next)
	})
	// Logged just after the new identity is in use: waited for too.
	waitFor(t, "the announcement logged", func() bool { return strings.Contains(log.String(), "announces="+next.Fingerprint()) })
}

// A CA-issued certificate renewed on disk (cert.pem replaced by a new
// certificate for the same key) is presented from the next handshake,
// without a restart; the connection made with the old one goes on.
func TestIdentityWatcherRenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	k := mustGenerate(t, jwk.EC256)
	writeKey(t, filepath.Join(dir, "key.json"), k, 0o600)
	ca := newCA(t)
	first := ca.issue(t, k)
	writeFile(t, filepath.Join(dir, "cert.pem"), first.CertificatePEM(), 0o644)
	w, err := WatchHomeIdentity(context.Background(), dir, CertOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	addr, cl := watchedEchoServer(t, w)
	serial := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }
	open, _ := presentedKey(t, addr, cl.id.Certificate)
	if serial(open) != first.Certificate.Leaf.SerialNumber.String() {
		t.Fatal("the server does not present its CA-issued certificate")
	}
	renewed := ca.issue(t, k)
	writeFile(t, filepath.Join(dir, "cert.pem"), renewed.CertificatePEM(), 0o644)
	waitFor(t, "the renewed certificate in a new handshake", func() bool {
		c, _ := presentedKey(t, addr, cl.id.Certificate)
		return serial(c) == renewed.Certificate.Leaf.SerialNumber.String()
	})
	echo(t, open)
}

// TestReloadLooksAgainAtAPublicHalf: a writer that takes no lock of the
// identity's writers (config management, an editor, a keytool whose lock
// file cannot be used) writes the key, then its public half — perhaps in
// a later task of its run, seconds later. A watching server's reload made
// between the two finds the public half the replaced key's and is refused
// (*PublicKeyError). Before, the key alone was watched and the refusal
// stood, the server presenting the replaced key until the next change of
// the key or SIGHUP (found by review, 2026-12-05); then a load made once
// more a second later covered only a writer quicker than that, and the
// public half written 3 s later left the refusal standing. The public
// half's write now loads again, whenever it comes: the server presents
// the new key in real handshakes, for a home (pub_key.json) and for a key
// given by name, as keytool -i FILE's watcher watches it (pub_NAME.*).
func TestReloadLooksAgainAtAPublicHalf(t *testing.T) {
	for _, named := range []bool{false, true} {
		for _, later := range []time.Duration{0, 3 * time.Second} {
			t.Run(fmt.Sprintf("named=%v/public_half_%s_after_the_refusal", named, later), func(t *testing.T) {
				t.Parallel()
				reloadAfterPublicHalf(t, named, later)
			})
		}
	}
}

// reloadAfterPublicHalf is TestReloadLooksAgainAtAPublicHalf's case: the
// public half written later after the reload's refusal; named, the key
// given by its file name (LoadIdentity) rather than a home's.
func reloadAfterPublicHalf(t *testing.T, named bool, later time.Duration) {
	dir := t.TempDir()
	keyFile, pub := filepath.Join(dir, "key.json"), filepath.Join(dir, "pub_key.json")
	if named {
		keyFile, pub = filepath.Join(dir, "id.json"), filepath.Join(dir, "pub_id.json")
	}
	k1, k2 := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	writeKey(t, keyFile, k1, 0o600)
	if err := jwk.WritePublicKeyFile(pub, k1, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	var log testlog.Buffer
	var w *IdentityWatcher
	var err error
	if named {
		w, err = WatchIdentity(context.Background(), IdentityWatchOptions{
			Files:  []string{keyFile},
			Public: homedir.PublicBeside(keyFile),
			Load:   func() (*Identity, error) { return LoadIdentity(keyFile, "", CertOptions{}) },
			Logger: log.Logger(),
		})
	} else {
		w, err = WatchHomeIdentity(context.Background(), dir, CertOptions{}, log.Logger())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	addr, cl := watchedEchoServer(t, w)

	writeKey(t, keyFile, k2, 0o600) // the first write: the key
	waitFor(t, "the reload refused", func() bool { return strings.Contains(log.String(), "identity not reloaded yet") })
	time.Sleep(later)
	if _, got := presentedKey(t, addr, cl.id.Certificate); got != k1.SPKIHash() {
		t.Fatal("the key was presented before its public half was written")
	}
	if err := jwk.WritePublicKeyFile(pub, k2, jwk.JWK, jwk.Overwrite); err != nil { // the second: its public half
		t.Fatal(err)
	}
	waitFor(t, "the new key in a new handshake", func() bool {
		_, got := presentedKey(t, addr, cl.id.Certificate)
		return got == k2.SPKIHash()
	})
}

// TestPublicHalfChangeAloneDoesNotReload: while no load is refused for a
// public half, a change to one (keytool gen or rotate writing it after
// its key, a public half in another format put beside it) loads nothing:
// a server presents no public half, and its log says nothing of it.
func TestPublicHalfChangeAloneDoesNotReload(t *testing.T) {
	dir := t.TempDir()
	k := mustGenerate(t, jwk.EC256)
	writeKey(t, filepath.Join(dir, "key.json"), k, 0o600)
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.json"), k, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	var log testlog.Buffer
	w, err := WatchHomeIdentity(context.Background(), dir, CertOptions{}, log.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	passed := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.publicPassed
	}
	for i, write := range []func() error{
		func() error {
			return jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.pem"), k, jwk.PEM, jwk.CreateNew)
		},
		func() error { return os.Remove(filepath.Join(dir, "pub_key.pem")) },
		func() error { return os.Chmod(filepath.Join(dir, "pub_key.json"), 0o640) },
	} {
		if err := write(); err != nil {
			t.Fatal(err)
		}
		// Seen: passed over, or (the behaviour broken) loaded.
		waitFor(t, "the change seen", func() bool { return passed() > i || strings.Contains(log.String(), "reloaded") })
		if strings.Contains(log.String(), "reloaded") {
			t.Fatalf("a change to a public half, none refused, loaded the identity:\n%s", log.String())
		}
	}
}
