package etcd

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

const prefix = "/keytool/test"

func keyJSON(tb testing.TB, k *jwk.Key, kv ...string) []byte {
	return keydirtest.JWK(tb, keydirtest.WithAttrs(k, kv...))
}

func identity(tb testing.TB) *tlsbridge.Identity {
	tb.Helper()
	k, err := jwk.Generate(jwk.Ed25519)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{DNSNames: []string{"localhost"}})
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func verdict(s *authkeys.Store, k *jwk.Key) authkeys.Verdict {
	return s.Decide(k.SPKIHash(), netip.MustParseAddr("127.0.0.1")).Verdict
}

// Keys written to etcd reach a running tlsbridge server and its client:
// the server admits a client authorized in etcd, the client pins the
// server by its trusted_hosts entry in etcd, and a revocation Put makes
// the server refuse the client's next handshake, and close (Server.Live)
// the connection it had open, within a second.
func TestRevocationReachesTLSBridgeServer(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix})
	ctx := t.Context()
	clients := authkeys.Open(ctx, src.AuthorizedOptions())
	defer clients.Close()
	hosts := knownhosts.Open(ctx, src.KnownHostsOptions())
	defer hosts.Close()

	serverID, clientID := identity(t), identity(t)
	srv, err := tlsbridge.NewServer(serverID, tlsbridge.ServerOptions{Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.RequireAuthenticated(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello, " + tlsbridge.PeerFromContext(r.Context()).Name()))
	})))
	ts.TLS = srv.TLSConfig()
	live := srv.Live(tlsbridge.LiveOptions{Changes: clients, Logger: slog.New(slog.DiscardHandler)})
	defer live.Close()
	ts.Config.ConnState = live.ConnState
	ts.Config.ConnContext = tlsbridge.ConnContext
	ts.StartTLS()
	defer ts.Close()
	c, err := tlsbridge.NewClient(clientID, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	get := func() (string, error) {
		tr := c.Transport()
		tr.DisableKeepAlives = true
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(ts.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return b.String(), nil
	}
	if _, err := get(); err == nil {
		t.Fatal("a handshake succeeded before anything was written to etcd")
	}

	put(t, cli, Key(prefix, TrustedHosts, "server"), keyJSON(t, serverID.Key.PublicKey(), "address", ts.Listener.Addr().String()))
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, clientID.Key.PublicKey()))
	eventually(t, 5*time.Second, "the client was not admitted", func() bool {
		body, err := get()
		return err == nil && body == "hello, alice"
	})

	// A connection open across the revocation: Server.Live closes it.
	conn, err := c.DialContext(t.Context(), "tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 4096)
	if n, err := conn.Read(reply); err != nil || !strings.Contains(string(reply[:n]), "hello, alice") {
		t.Fatalf("the open connection's first request: %q, %v", reply[:n], err)
	}
	closed := make(chan time.Time, 1)
	go func() {
		for {
			if _, err := conn.Read(reply); err != nil {
				closed <- time.Now()
				return
			}
		}
	}()

	start := time.Now()
	put(t, cli, Key(prefix, Revoked, "alice"), keyJSON(t, clientID.Key.PublicKey()))
	for {
		_, err := get()
		if err != nil {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("the client was still admitted %s after its revocation was Put", time.Since(start))
		}
	}
	t.Logf("revocation enforced by a new handshake %s after the Put", time.Since(start))
	select {
	case at := <-closed:
		t.Logf("the open connection closed %s after the Put", at.Sub(start))
		if at.Sub(start) > time.Second {
			t.Errorf("the open connection closed %s after the Put, past a second", at.Sub(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the open connection of the revoked key is still open 5 s after the Put")
	}
	if v := verdict(clients, clientID.Key); v != authkeys.Revoked {
		t.Fatalf("verdict %v, want revoked", v)
	}

	// Lifting the revocation admits it again; removing the entry does not.
	del(t, cli, Key(prefix, Revoked, "alice"))
	eventually(t, 5*time.Second, "not admitted after the revocation was deleted", func() bool { _, err := get(); return err == nil })
	del(t, cli, Key(prefix, Authorized, "alice"))
	eventually(t, 5*time.Second, "still admitted after the entry was deleted", func() bool { _, err := get(); return err != nil })
}

// Malformed values, values over the bound and keys outside the layout are
// reported by key and grant nothing; a malformed revocation refuses every
// key until it is fixed.
func TestBadEntriesReportedByKey(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	k := func(n int) *jwk.Key { return keydirtest.Key(t, n) }
	put(t, cli, Key(prefix, Authorized, "good"), keyJSON(t, k(1)))
	put(t, cli, Key(prefix, Authorized, "bad"), []byte("not a key"))
	put(t, cli, Key(prefix, Authorized, "huge"), append(keyJSON(t, k(2)), bytes.Repeat([]byte(" "), DefaultMaxValue)...))
	put(t, cli, Key(prefix, Authorized, "nested/name"), keyJSON(t, k(3)))
	put(t, cli, prefix+"/authorised_keys/typo", keyJSON(t, k(4)))
	put(t, cli, prefix+"/loose", keyJSON(t, k(5)))
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()

	if v := verdict(store, k(1)); v != authkeys.Authorized {
		t.Fatalf("good entry: %v", v)
	}
	for n := 2; n <= 5; n++ {
		if v := verdict(store, k(n)); v != authkeys.Unknown {
			t.Errorf("key %d: %v, want unknown", n, v)
		}
	}
	reported := map[string]error{}
	for _, p := range store.Problems() {
		reported[p.Path] = p.Err
	}
	for _, name := range []string{"bad", "huge", "nested/name"} {
		if reported["etcd:"+prefix+"/authorized_keys/"+name] == nil {
			t.Errorf("entry %q not reported; problems: %v", name, store.Problems())
		}
	}
	var tooLarge *TooLargeError
	if !errors.As(reported["etcd:"+prefix+"/authorized_keys/huge"], &tooLarge) {
		t.Errorf("huge: %v", reported["etcd:"+prefix+"/authorized_keys/huge"])
	}
	outside := map[string]bool{}
	for _, p := range src.Problems() {
		outside[p.Path] = errors.Is(p.Err, ErrOutsideLayout)
	}
	if !outside[prefix+"/authorised_keys/typo"] || !outside[prefix+"/loose"] || len(outside) != 2 {
		t.Errorf("outside the layout: %v", src.Problems())
	}

	put(t, cli, Key(prefix, Revoked, "garbage"), []byte("{"))
	eventually(t, 5*time.Second, "a malformed revocation did not refuse every key", func() bool { return verdict(store, k(1)) == authkeys.Revoked })
	del(t, cli, Key(prefix, Revoked, "garbage"))
	eventually(t, 5*time.Second, "the good key not admitted again", func() bool { return verdict(store, k(1)) == authkeys.Authorized })
}

// A host that restarts while etcd is down enforces the cache's view,
// revocations included; a corrupt cache, or one with unsafe modes, is
// refused and every key with it.
func TestCacheWhenEtcdDown(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	alice, bob := keydirtest.Key(t, 1), keydirtest.Key(t, 2)
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	put(t, cli, Key(prefix, Authorized, "bob"), keyJSON(t, bob))
	rev := put(t, cli, Key(prefix, Revoked, "bob"), keyJSON(t, bob))
	cache := filepath.Join(t.TempDir(), "etcd", "cache.json")
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix, Cache: cache})
	eventually(t, 5*time.Second, "no cache written", func() bool {
		data, err := os.ReadFile(cache)
		return err == nil && strings.Contains(string(data), `"revision":`) && src.Revision() >= rev
	})
	src.Close()
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache %v, %v: want mode 0600", fi.Mode(), err)
	}
	ms[0].stop()

	restart := func() (*Source, *authkeys.Store) {
		s, err := Open(t.Context(), Options{Client: client(t, ms[0].endpoint()), Prefix: prefix, Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		store := authkeys.Load(s.AuthorizedOptions())
		return s, store
	}
	s, store := restart()
	if v, w := verdict(store, alice), verdict(store, bob); v != authkeys.Authorized || w != authkeys.Revoked {
		t.Fatalf("from the cache: alice %v, bob %v; want authorized, revoked", v, w)
	}
	if s.Revision() != rev {
		t.Errorf("cache revision %d, want %d", s.Revision(), rev)
	}
	// etcd back: its list replaces the cache's view, and the watch goes on.
	live := authkeys.Open(t.Context(), s.AuthorizedOptions())
	defer live.Close()
	if err := ms[0].start(); err != nil {
		t.Fatal(err)
	}
	cli = client(t, ms[0].endpoint())
	del(t, cli, Key(prefix, Revoked, "bob"))
	put(t, cli, Key(prefix, Revoked, "alice"), keyJSON(t, alice))
	eventually(t, 20*time.Second, "etcd's changes not followed after the cache", func() bool {
		return verdict(live, alice) == authkeys.Revoked && verdict(live, bob) == authkeys.Authorized
	})
	s.Close()
	ms[0].stop()

	good, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		spoil func()
		want  error
	}{
		{"corrupt", func() { os.WriteFile(cache, good[:len(good)/2], 0o600) }, nil},
		{"another prefix", func() { os.WriteFile(cache, bytes.Replace(good, []byte(prefix), []byte("/other"), 1), 0o600) }, nil},
		{"writable by others", func() { os.WriteFile(cache, good, 0o600); os.Chmod(cache, 0o666) }, &trustfile.PermissionError{}},
	} {
		c.spoil()
		_, store := restart()
		d := store.Decide(alice.SPKIHash(), netip.Addr{})
		var ce *CacheError
		if d.Verdict != authkeys.Revoked || !errors.As(d.Err, &ce) {
			t.Errorf("%s cache: %v (%v), want revoked by a CacheError", c.name, d.Verdict, d.Err)
		}
		if pe := new(trustfile.PermissionError); c.want != nil && !errors.As(d.Err, &pe) {
			t.Errorf("%s cache: %v, want a permission error", c.name, d.Err)
		}
	}
}

// Past MaxStaleness without etcd, every key is refused; once etcd answers
// again the view is used again. Nothing here waits for a time to pass and
// then expects a state: a loaded machine can delay etcd's answers past the
// bound (the view is then rightly stale for a while), so each step waits
// for the event it is about, with a generous deadline.
func TestStaleRefusedThenAdmitted(t *testing.T) {
	const maxStaleness = 2 * time.Second
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	alice := keydirtest.Key(t, 1)
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix, MaxStaleness: maxStaleness, Progress: 200 * time.Millisecond})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	// Being current is confirmed without any write under the prefix: the
	// view is confirmed current twice the bound after the last write
	// there, and alice is admitted then — first with nothing written
	// anywhere (a read confirms it), then with a write elsewhere in the
	// cluster (a progress notification does).
	confirmedWithoutWrites := func(what string) {
		t.Helper()
		mark := time.Now().Add(2 * maxStaleness)
		eventually(t, time.Minute, what, func() bool {
			return src.Current().After(mark) && verdict(store, alice) == authkeys.Authorized
		})
	}
	confirmedWithoutWrites("with etcd up and no writes: not confirmed current, or alice not admitted")
	put(t, cli, "/elsewhere", []byte("x"))
	confirmedWithoutWrites("with etcd up and a write elsewhere only: not confirmed current, or alice not admitted")

	// A graceful stop takes seconds, serving meanwhile: the refusal is
	// watched for as it goes on.
	confirmed, stopping := src.Current(), time.Now()
	stopped := make(chan time.Time, 1)
	go func() { ms[0].stop(); stopped <- time.Now() }()
	t.Cleanup(func() { <-stopped }) // before the cluster's cleanup stops it too
	var (
		d       authkeys.Decision
		refused time.Time
	)
	eventually(t, time.Minute, "not refused once stale", func() bool {
		d = store.Decide(alice.SPKIHash(), netip.MustParseAddr("127.0.0.1"))
		refused = time.Now() // after the decision: the refusal was no later
		return d.Verdict == authkeys.Revoked
	})
	var se *StaleError
	if !errors.As(d.Err, &se) {
		t.Fatalf("refused by %v, want a StaleError", d.Err)
	}
	// Not before the bound: the view is used for MaxStaleness after it
	// was last confirmed current (which never moves back). Load only
	// delays a refusal, so this cannot fail for a slow machine.
	if early := refused.Sub(confirmed); early <= maxStaleness {
		t.Errorf("refused %s after the view was last confirmed current before etcd began stopping: before the bound of %s", early, maxStaleness)
	}
	if se.Current.Before(confirmed) {
		t.Errorf("refused as current at %v, before the %v it had been confirmed at", se.Current, confirmed)
	}
	stop := <-stopped
	stopped <- stop // for the cleanup
	if err := ms[0].start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	eventually(t, time.Minute, "not admitted once etcd answered again", func() bool { return verdict(store, alice) == authkeys.Authorized })
	t.Logf("refused %s after the bound (seen %s after etcd began stopping, a stop of %s); admitted again %s after it was back",
		refused.Sub(se.Current)-maxStaleness, refused.Sub(stopping), stop.Sub(stopping), time.Since(started))
}

func keyN(tb testing.TB, n int) *jwk.Key { return keydirtest.Key(tb, n) }
