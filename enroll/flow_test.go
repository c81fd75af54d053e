package enroll

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"net/netip"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// TestJoin is the whole flow between two homes, served both ways: by an
// HTTP server (WithEnrollment) and connection by connection (ServeConn, as
// keytool proxy does).
func TestJoin(t *testing.T) {
	for _, conn := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "serveconn"}[conn]
		t.Run(name, func(t *testing.T) {
			srvHome, cli := newHome(t), newHome(t)
			srv := startServer(t, srvHome, serverConfig{conn: conn})
			// The first address is down: Join goes on to the next.
			tok := srvHome.invite(t, "laptop", closedAddr(t), srv.addr)
			enc := encode(t, tok)
			tok, err := DecodeToken(enc)
			if err != nil {
				t.Fatal(err)
			}

			if _, err := cli.greet(t, srv.addr, conn); err == nil {
				t.Fatal("an unknown client was served before enrolling")
			}
			res, err := cli.join(t, tok)
			if err != nil {
				t.Fatal(err)
			}
			if res.Name != "laptop" || res.Addr != srv.addr || res.ServerFingerprint != srvHome.key().Fingerprint() || res.ClientFingerprint != cli.key().Fingerprint() {
				t.Fatalf("result %+v", res)
			}
			// Only the address that answered is pinned: the key was never
			// seen at the one that was down.
			if len(res.Pins) != 1 || !res.Pins[0].New || res.Pins[0].File != filepath.Join(cli.dir, "trusted_hosts.d", strings.ReplaceAll(srv.addr, ":", "_")+".json") {
				t.Fatalf("pins %+v", res.Pins)
			}
			if len(res.Unverified) != 1 || res.Unverified[0].Addr != tok.Addresses[0] {
				t.Fatalf("unverified %+v", res.Unverified)
			}

			// Server: the client's key is authorized under the name, 0644.
			e, err := srvHome.clients(t).LookupKey(cli.key(), netip.Addr{})
			if err != nil || e.Name != "laptop" || e.File != filepath.Join(srvHome.dir, "authorized_keys.d", "laptop.json") {
				t.Fatalf("authorized entry %+v, %v", e, err)
			}
			mode(t, e.File, 0o644)
			// Client: the server's key is pinned for the token's addresses.
			if err := cli.hosts(t).Check(srv.addr, srvHome.key()); err != nil {
				t.Fatalf("server not pinned: %v", err)
			}
			// The invitation is used: gone from the pending ones, recorded.
			invs, probs := ListInvites(InvitesDir(srvHome.dir))
			if len(probs) > 0 || len(invs) != 1 || invs[0].Status(time.Now()) != "used" || invs[0].ClientFingerprint != cli.key().Fingerprint() {
				t.Fatalf("invitations %+v %v", invs, probs)
			}
			mode(t, invs[0].File, 0o600)
			if !strings.Contains(srv.log.String(), "enrolled") || !strings.Contains(srv.log.String(), cli.key().Fingerprint()) {
				t.Errorf("server log:\n%s", srv.log)
			}
			assertNoSecret(t, srv.log.String(), tok)

			// And now the client is a client like any other.
			got, err := cli.greet(t, srv.addr, conn)
			if err != nil || got != "hello laptop\n" {
				t.Fatalf("after enrolling: %q, %v", got, err)
			}
		})
	}
}

func mode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), want)
	}
}

func assertNoSecret(t *testing.T, s string, tok Token) {
	t.Helper()
	enc, _ := tok.Encode()
	for _, secret := range []string{base64.RawURLEncoding.EncodeToString(tok.Secret[:]), enc[len(TokenPrefix):], string(tok.Secret[:])} {
		if strings.Contains(s, secret) {
			t.Fatalf("the secret shows in:\n%s", s)
		}
	}
}

// failure sets up a fresh pair of homes and a server, runs a failing join,
// and checks that nothing was written on either side.
type failure struct {
	srvHome, cli *home
	srv          *server
	tok          Token
}

func newFailure(t *testing.T, cfg serverConfig) *failure {
	f := &failure{srvHome: newHome(t), cli: newHome(t)}
	f.srv = startServer(t, f.srvHome, cfg)
	f.tok = f.srvHome.invite(t, "laptop", f.srv.addr)
	return f
}

// join joins with tok, expects an error, and checks both homes unchanged.
func (f *failure) join(t *testing.T, tok Token) error {
	t.Helper()
	sb, cb := snapshot(t, f.srvHome.dir), snapshot(t, f.cli.dir)
	_, err := f.cli.join(t, tok)
	if err == nil {
		t.Fatal("join succeeded")
	}
	unchanged(t, f.srvHome.dir, sb)
	unchanged(t, f.cli.dir, cb)
	return err
}

func TestJoinFailures(t *testing.T) {
	t.Run("wrong secret", func(t *testing.T) {
		f := newFailure(t, serverConfig{})
		bad := f.tok
		bad.Secret[7] ^= 1
		err := f.join(t, bad)
		var re *RefusedError
		if !errors.Is(err, ErrUnknown) || !errors.As(err, &re) || re.Status != 404 || !strings.Contains(err.Error(), "no invitation named \"laptop\" for this token") {
			t.Fatalf("got %v", err)
		}
		assertNoSecret(t, f.srv.log.String(), f.tok)
		assertNoSecret(t, f.srv.log.String(), bad)
		if !strings.Contains(f.srv.log.String(), "reason=wrong_secret") || !strings.Contains(f.srv.log.String(), "invitation=laptop") ||
			!strings.Contains(f.srv.log.String(), "client_fingerprint="+f.cli.key().Fingerprint()) || !strings.Contains(f.srv.log.String(), "remote=127.0.0.1:") {
			t.Errorf("log:\n%s", f.srv.log)
		}
		// The invitation is intact: the right token still works.
		if _, err := f.cli.join(t, f.tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("expired at the server", func(t *testing.T) {
		f := newFailure(t, serverConfig{now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
		err := f.join(t, f.tok)
		var re *RefusedError
		if !errors.Is(err, ErrExpired) || !errors.As(err, &re) || re.Status != 410 || !strings.Contains(err.Error(), "expired at") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("expired at the client", func(t *testing.T) {
		f := newFailure(t, serverConfig{})
		_, tok, err := NewInvite(InvitesDir(f.srvHome.dir), f.srvHome.key(), InviteOptions{Name: "old", Addresses: []string{f.srv.addr},
			Now: func() time.Time { return time.Now().Add(-3 * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		err = f.join(t, tok)
		var te *TokenExpiredError
		if !errors.Is(err, ErrExpired) || !errors.As(err, &te) {
			t.Fatalf("got %v", err)
		}
		if strings.Contains(f.srv.log.String(), "old") {
			t.Error("the client connected with an expired token")
		}
	})
	t.Run("already used", func(t *testing.T) {
		f := newFailure(t, serverConfig{})
		if _, err := newHome(t).join(t, f.tok); err != nil {
			t.Fatal(err)
		}
		err := f.join(t, f.tok)
		var re *RefusedError
		if !errors.Is(err, ErrAlreadyUsed) || !errors.As(err, &re) || re.Status != 409 || !strings.Contains(err.Error(), "already used, at ") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		f := newFailure(t, serverConfig{})
		inv, err := RevokeInvite(InvitesDir(f.srvHome.dir), "laptop")
		if err != nil || inv.Name != "laptop" {
			t.Fatal(inv, err)
		}
		err = f.join(t, f.tok)
		var re *RefusedError
		if !errors.Is(err, ErrUnknown) || !errors.As(err, &re) || re.Status != 404 || !strings.Contains(err.Error(), "it was removed or made again, or never made here") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("interception", func(t *testing.T) {
		// The server presents another key than the token names.
		other := newHome(t)
		f := newFailure(t, serverConfig{id: other.id})
		err := f.join(t, f.tok)
		var ie *InterceptionError
		if !errors.As(err, &ie) || ie.Want != f.srvHome.key().Fingerprint() || ie.Got != other.key().Fingerprint() || ie.Addr != f.srv.addr {
			t.Fatalf("got %v", err)
		}
		for _, want := range []string{f.srvHome.key().Fingerprint(), other.key().Fingerprint(), "secret was not sent"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message lacks %q:\n%v", want, err)
			}
		}
		if strings.Contains(f.srv.log.String(), "laptop") {
			t.Errorf("the request reached the server:\n%s", f.srv.log)
		}
		// The invitation was not touched.
		if invs, _ := ListInvites(InvitesDir(f.srvHome.dir)); len(invs) != 1 || invs[0].Status(time.Now()) != "pending" {
			t.Fatalf("invitations %+v", invs)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		f := newFailure(t, serverConfig{})
		a, b := closedAddr(t), closedAddr(t)
		_, tok, err := NewInvite(InvitesDir(f.srvHome.dir), f.srvHome.key(), InviteOptions{Name: "x", Addresses: []string{a, b}})
		if err != nil {
			t.Fatal(err)
		}
		err = f.join(t, tok)
		var ue *UnreachableError
		if !errors.As(err, &ue) || len(ue.Attempts) != 2 || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("server does not serve enrollment", func(t *testing.T) {
		f := newFailure(t, serverConfig{noEnroll: true})
		err := f.join(t, f.tok)
		var he *HandshakeRefusedError
		if !errors.As(err, &he) || he.Addr != f.srv.addr || he.ServerFingerprint != f.srvHome.key().Fingerprint() || he.ClientFingerprint != f.cli.key().Fingerprint() {
			t.Fatalf("got %v, want a *HandshakeRefusedError", err)
		}
	})
	t.Run("pinned to another key", func(t *testing.T) {
		f := newFailure(t, serverConfig{})
		if _, err := f.cli.hosts(t).Add(f.srv.addr, newHome(t).key()); err != nil {
			t.Fatal(err)
		}
		err := f.join(t, f.tok)
		var kc *knownhosts.KeyChangedError
		var hd *HostsDisagreeError
		if !errors.As(err, &kc) || !errors.As(err, &hd) || hd.Addr != f.srv.addr || !strings.Contains(err.Error(), "nothing was sent or written") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("name taken on the server", func(t *testing.T) {
		f := newFailure(t, serverConfig{})
		if _, err := f.srvHome.clients(t).Add(newHome(t).key(), "laptop", authkeys.AddNew); err != nil {
			t.Fatal(err)
		}
		err := f.join(t, f.tok)
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != ReasonNotEnrollable || !strings.Contains(err.Error(), "another key named \"laptop\"") {
			t.Fatalf("got %v", err)
		}
		if invs, _ := ListInvites(InvitesDir(f.srvHome.dir)); len(invs) != 1 || invs[0].Status(time.Now()) != "pending" {
			t.Fatalf("the invitation was not put back: %+v", invs)
		}
	})
	t.Run("name taken, on a file system without locks", func(t *testing.T) {
		// A failed enrollment gives its invitation back without the
		// lock too: nothing is put back (see Handler.release).
		f := newFailure(t, serverConfig{})
		if _, err := f.srvHome.clients(t).Add(newHome(t).key(), "laptop", authkeys.AddNew); err != nil {
			t.Fatal(err)
		}
		lockFile = func(string) (func(), bool, error) { return func() {}, false, nil }
		t.Cleanup(func() { lockFile = keydir.LockFile })
		err := f.join(t, f.tok)
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != ReasonNotEnrollable || !strings.Contains(err.Error(), "the invitation is unchanged") {
			t.Fatalf("got %v", err)
		}
		if invs, _ := ListInvites(InvitesDir(f.srvHome.dir)); len(invs) != 1 || invs[0].Status(time.Now()) != "pending" {
			t.Fatalf("the invitation is not pending: %+v", invs)
		}
	})
	t.Run("name taken, the invitation revoked meanwhile", func(t *testing.T) {
		// The client must not be told its invitation is unchanged.
		f := &failure{srvHome: newHome(t), cli: newHome(t)}
		store := &failingStore{during: func() {
			if inv, err := RevokeInvite(InvitesDir(f.srvHome.dir), "laptop"); err != nil || inv.Claimed.IsZero() {
				t.Errorf("revoking an invitation being used: %+v, %v", inv, err)
			}
		}}
		f.srv = startServer(t, f.srvHome, serverConfig{store: func(c ClientStore) ClientStore { store.ClientStore = c; return store }})
		f.tok = f.srvHome.invite(t, "laptop", f.srv.addr)
		if _, err := f.srvHome.clients(t).Add(newHome(t).key(), "laptop", authkeys.AddNew); err != nil {
			t.Fatal(err)
		}
		cb := snapshot(t, f.cli.dir)
		_, err := f.cli.join(t, f.tok) // the server's home changes: the invitation is gone
		unchanged(t, f.cli.dir, cb)
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != ReasonNotEnrollable || !strings.Contains(err.Error(), "the invitation is used up all the same") || strings.Contains(err.Error(), "unchanged") {
			t.Fatalf("got %v", err)
		}
		if invs, _ := ListInvites(InvitesDir(f.srvHome.dir)); len(invs) != 0 {
			t.Fatalf("the invitation is still listed: %+v", invs)
		}
	})
	t.Run("name held by another file on the server", func(t *testing.T) {
		// Not laptop.json: another client's file whose "name" member says
		// laptop. Enrolling under it would make two clients one identity.
		f := newFailure(t, serverConfig{})
		pk := newHome(t).key().PublicKey()
		pk.Attrs = jwk.Attributes{}
		pk.Attrs.SetString(jwk.AttrName, "laptop")
		data, err := pk.MarshalPublic(jwk.JWK)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(f.srvHome.dir, "authorized_keys.d")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "desk.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		err = f.join(t, f.tok)
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != ReasonNotEnrollable || !strings.Contains(err.Error(), "another key named \"laptop\"") {
			t.Fatalf("got %v", err)
		}
		if _, err := os.Lstat(filepath.Join(f.srvHome.dir, "authorized_keys.d", "laptop.json")); err == nil {
			t.Fatal("laptop.json was written")
		}
	})
	t.Run("mangled token", func(t *testing.T) {
		f := newFailure(t, serverConfig{})
		enc := encode(t, f.tok)
		i := len(enc) / 2
		c := byte('A')
		if enc[i] == 'A' {
			c = 'B'
		}
		_, err := DecodeToken(enc[:i] + string(c) + enc[i+1:])
		if !errors.Is(err, ErrTokenMangled) || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestJoinRace: clients racing for one token, exactly one wins, the
// others are told it was used, and only the winner is authorized.
func TestJoinRace(t *testing.T) {
	rounds, racers := 20, 4
	if testing.Short() {
		rounds = 3
	}
	srvHome := newHome(t)
	// Two servers on the same home, each with its own handler and store,
	// stand for two processes: the claim holds across them.
	lim := Limits{PerAddressBurst: 1000, GlobalBurst: 1000}
	srvs := []*server{startServer(t, srvHome, serverConfig{conn: true, limits: lim}), startServer(t, srvHome, serverConfig{limits: lim})}
	for round := range rounds {
		name := "racer-" + string(rune('a'+round))
		tok := srvHome.invite(t, name, srvs[0].addr)
		clients := make([]*home, racers)
		for i := range clients {
			clients[i] = newHome(t)
		}
		errs := make([]error, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok := tok
				tok.Addresses = []string{srvs[i%2].addr}
				<-start
				_, errs[i] = c.join(t, tok)
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
				if e, lerr := srvHome.clients(t).LookupKey(clients[i].key(), netip.Addr{}); lerr != nil || e.Name != name {
					t.Fatalf("round %d: winner not authorized: %v", round, lerr)
				}
			case errors.Is(err, ErrAlreadyUsed):
				if _, err := os.Stat(filepath.Join(clients[i].dir, "trusted_hosts.d")); err == nil {
					t.Fatalf("round %d: a loser pinned the server", round)
				}
			default:
				t.Fatalf("round %d: unexpected error: %v", round, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d winners", round, winners)
		}
	}
	if n := len(srvHome.clients(t).Entries()); n != rounds {
		t.Fatalf("%d keys authorized after %d rounds", n, rounds)
	}
}

// TestRateLimit: after the allowed failures, attempts from the address are
// refused — the right secret too — and logged; time restores them.
func TestRateLimit(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFailure(t, serverConfig{now: clock, limits: Limits{PerAddressBurst: 3, PerAddressEvery: time.Minute}})
	bad := f.tok
	bad.Secret[0] ^= 0xff
	for i := range 3 {
		if err := f.join(t, bad); !errors.Is(err, ErrUnknown) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	err := f.join(t, f.tok)
	var re *RefusedError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &re) || re.Status != 429 || !strings.Contains(err.Error(), "try again in 60 seconds") {
		t.Fatalf("got %v", err)
	}
	log := f.srv.log.String()
	if strings.Count(log, "reason=wrong_secret") != 3 || !strings.Contains(log, "reason=rate_limited") {
		t.Fatalf("log:\n%s", log)
	}
	assertNoSecret(t, log, f.tok)
	// A minute later, one more attempt is allowed.
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, err := f.cli.join(t, f.tok); err != nil {
		t.Fatal(err)
	}
}

// TestOtherPaths: an unauthenticated client gets 403 (not_authorized,
// with its own key), on a ServeConn connection, for anything but the
// endpoint.
func TestOtherPaths(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	srv := startServer(t, srvHome, serverConfig{conn: true})
	if _, err := cli.hosts(t).Add(srv.addr, srvHome.key()); err != nil {
		t.Fatal(err)
	}
	body, err := cli.get(t, srv.addr, "/")
	if err == nil || !strings.Contains(body, `"reason":"not_authorized"`) || !strings.Contains(body, cli.key().Fingerprint()) {
		t.Fatalf("%v: %s", err, body)
	}
	body, err = cli.get(t, srv.addr, Path)
	if err == nil || !strings.Contains(body, `"reason":"method_not_allowed"`) {
		t.Fatalf("%v: %s", err, body)
	}
}

// TestHandlerRefusesOpenDir: invitations that group or others could have
// written are not honoured.
func TestHandlerRefusesOpenDir(t *testing.T) {
	f := newFailure(t, serverConfig{})
	if err := os.Chmod(InvitesDir(f.srvHome.dir), 0o777); err != nil {
		t.Fatal(err)
	}
	err := f.join(t, f.tok)
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != ReasonInternal || !strings.Contains(f.srv.log.String(), "too open") || !strings.Contains(f.srv.log.String(), InvitesDir(f.srvHome.dir)) {
		t.Fatalf("got %v\n%s", err, f.srv.log)
	}
}

// TestServeConnCancel: cancelling the context closes a connection that
// ServeConn is waiting on, and ServeConn returns.
func TestServeConnCancel(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeConn(ctx, a, http.NotFoundHandler()) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return after cancel")
	}
}
