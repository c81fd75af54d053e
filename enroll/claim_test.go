package enroll

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// claimNow claims the pending invitation name of h with tok as the
// handler of srv does when a client presents it, and leaves the claim in
// progress: a client being enrolled at this moment.
func claimNow(t *testing.T, h *home, srv *server, name string, tok Token) string {
	t.Helper()
	claim, err := srv.handler.claim(filepath.Join(InvitesDir(h.dir), name+".json"), name, sha256.Sum256(tok.Secret[:]))
	if err != nil {
		t.Fatal(err)
	}
	return claim
}

// TestUsedTokenWhileOthersAreClaimed: a used token is told "already used"
// whatever else is being claimed at that moment — another invitation
// whose name starts with its own and a dot, or a later invitation of the
// same name — and not that its secret is wrong.
func TestUsedTokenWhileOthersAreClaimed(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	tok := srvHome.invite(t, "a", srv.addr)
	if _, err := newHome(t).join(t, tok); err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{"a.b", "a"} {
		claimNow(t, srvHome, srv, other, srvHome.invite(t, other, srv.addr))
		_, err := newHome(t).join(t, tok)
		if !errors.Is(err, ErrAlreadyUsed) || !strings.Contains(err.Error(), "already used, at ") {
			t.Fatalf("while %q is being claimed: %v", other, err)
		}
	}
}

// TestRevokeWhileClaimed: revoking an invitation while a client presents
// its token holds even if that enrollment then fails, when the handler
// gives a claimed invitation back; the revocation says that a client was
// presenting the token.
func TestRevokeWhileClaimed(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	tok := srvHome.invite(t, "laptop", srv.addr)
	dir := InvitesDir(srvHome.dir)
	claim := claimNow(t, srvHome, srv, "laptop", tok)
	inv, err := RevokeInvite(dir, "laptop")
	if err != nil || inv.Claimed.IsZero() {
		t.Fatalf("revoking a claimed invitation: %+v, %v", inv, err)
	}
	// Adding the key fails (as when the name is taken): the handler
	// gives the invitation back if it is still pending.
	srv.handler.release(claim, filepath.Join(dir, "laptop.json"))
	if _, err := newHome(t).join(t, tok); !errors.Is(err, ErrUnknown) {
		t.Fatalf("the revoked token, after the enrollment in progress failed: %v", err)
	}
	if !strings.Contains(srv.log.String(), "not restored") {
		t.Errorf("log:\n%s", srv.log)
	}
	var np *NotPendingError
	if _, err := RevokeInvite(dir, "laptop"); !errors.As(err, &np) || np.InUse {
		t.Fatalf("revoking again: %v", err)
	}
}

// TestClaimOfAnInvitationMadeAgain: an invitation removed and made again
// under the same name between the check of a token and its claim is not
// claimed by the old token — it stays pending for the new one, which
// then enrolls.
func TestClaimOfAnInvitationMadeAgain(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	old := srvHome.invite(t, "laptop", srv.addr)
	var fresh Token
	testHookBeforeClaim = func() {
		testHookBeforeClaim = nil
		if _, err := RevokeInvite(InvitesDir(srvHome.dir), "laptop"); err != nil {
			t.Error(err)
		}
		fresh = srvHome.invite(t, "laptop", srv.addr)
	}
	t.Cleanup(func() { testHookBeforeClaim = nil })
	if _, err := newHome(t).join(t, old); !errors.Is(err, ErrUnknown) {
		t.Fatalf("the old token, its invitation made again meanwhile: %v", err)
	}
	if _, err := newHome(t).join(t, fresh); err != nil {
		t.Fatalf("the new token: %v", err)
	}
}

// TestRevokeRacingAClaim: a client presenting its token between the
// moment RevokeInvite reads the invitation and the moment it deletes it
// does not bring the invitation back when its enrollment fails — whether
// it fails after the revocation, before the claims are listed, or before
// its claim is deleted. The revocation says a client was presenting the
// token when it found its claim, and not when that enrollment had
// already failed. Each case is driven step by step through
// testHookRevoke.
func TestRevokeRacingAClaim(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	dir := InvitesDir(srvHome.dir)
	pending := filepath.Join(dir, "laptop.json")
	t.Cleanup(func() { testHookRevoke = nil })
	for _, failsAt := range []string{"", "claims", "claim"} {
		name := "fails at " + failsAt
		if failsAt == "" {
			name = "fails after"
		}
		t.Run(name, func(t *testing.T) {
			tok := srvHome.invite(t, "laptop", srv.addr)
			var claim string
			failed := false
			testHookRevoke = func(step string) {
				switch {
				case step == "remove" && claim == "":
					claim = claimNow(t, srvHome, srv, "laptop", tok)
				case step == failsAt && !failed:
					// The enrollment in progress fails (as when the
					// name is taken): the handler gives the invitation
					// back if it is still pending.
					srv.handler.release(claim, pending)
					failed = true
				}
			}
			inv, err := RevokeInvite(dir, "laptop")
			testHookRevoke = nil
			if !failed {
				srv.handler.release(claim, pending)
			}
			if err != nil || inv == nil || inv.Name != "laptop" {
				t.Fatalf("revoking an invitation claimed meanwhile: %v, %v", inv, err)
			}
			if claimed := !inv.Claimed.IsZero(); claimed != (failsAt != "claims") {
				t.Fatalf("revoking an invitation claimed meanwhile, failing at %q: claimed %s", failsAt, inv.Claimed)
			}
			checkRevoked(t, dir, pending, tok)
		})
	}
}

// TestRevokeRacingTwoClients: two clients hold the token of one
// invitation. The first has claimed it when RevokeInvite runs; while
// RevokeInvite deletes the claims it found, the first client's
// enrollment fails and gives the invitation back, and the second tries
// to claim it. The revoked invitation must not be pending again, nor its
// token work. (With the rename claims of before, the first's failure
// put the invitation back, the second claimed it under a claim
// RevokeInvite never saw, and its own failure put the revoked
// invitation back.)
func TestRevokeRacingTwoClients(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	tok := srvHome.invite(t, "laptop", srv.addr)
	dir := InvitesDir(srvHome.dir)
	pending := filepath.Join(dir, "laptop.json")
	sum := sha256.Sum256(tok.Secret[:])
	first := claimNow(t, srvHome, srv, "laptop", tok)
	var second string
	var secondErr error
	called := false
	testHookRevoke = func(step string) {
		if step != "claim" || called {
			return
		}
		called = true
		srv.handler.release(first, pending) // the first fails
		second, secondErr = srv.handler.claim(pending, "laptop", sum)
	}
	t.Cleanup(func() { testHookRevoke = nil })
	inv, err := RevokeInvite(dir, "laptop")
	testHookRevoke = nil
	if !called {
		t.Fatal("RevokeInvite found no claim to delete")
	}
	if err != nil || inv.Claimed.IsZero() {
		t.Errorf("revoking an invitation claimed by a client: %+v, %v", inv, err)
	}
	if secondErr == nil {
		srv.handler.release(second, pending) // the second fails
		t.Error("the second client claimed a revoked invitation")
	} else if !errors.Is(secondErr, fs.ErrNotExist) {
		t.Fatal(secondErr)
	}
	checkRevoked(t, dir, pending, tok)
}

// TestFailureAfterRevocationLeavesTheNewInvitation: an invitation
// revoked while a client presents its token, and made again under the
// same name, is not touched when that enrollment fails: the new token
// enrolls, the old one does not.
func TestFailureAfterRevocationLeavesTheNewInvitation(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	dir := InvitesDir(srvHome.dir)
	old := srvHome.invite(t, "laptop", srv.addr)
	claim := claimNow(t, srvHome, srv, "laptop", old)
	if inv, err := RevokeInvite(dir, "laptop"); err != nil || inv.Claimed.IsZero() {
		t.Fatalf("revoking an invitation being used: %+v, %v", inv, err)
	}
	fresh := srvHome.invite(t, "laptop", srv.addr)
	if srv.handler.release(claim, filepath.Join(dir, "laptop.json")) { // the old one's enrollment fails
		t.Error("the old invitation's failure says it is pending again")
	}
	if _, err := newHome(t).join(t, old); !errors.Is(err, ErrUnknown) {
		t.Fatalf("the revoked token, a new invitation of its name pending: %v", err)
	}
	if _, err := newHome(t).join(t, fresh); err != nil {
		t.Fatalf("the new token: %v", err)
	}
}

// TestReleaseWithoutTheLock: where the invitations cannot be locked — a
// file system without flock(2), or a lock that fails — a failed
// enrollment gives its invitation back all the same, since nothing is
// put back (before: it used the invitation up, a revocation could be
// under way); RevokeInvite still revokes without flock, and refuses on
// a lock that fails.
func TestReleaseWithoutTheLock(t *testing.T) {
	for _, mode := range lockModes[1:] {
		t.Run(mode.name, func(t *testing.T) {
			srvHome := newHome(t)
			srv := startServer(t, srvHome, serverConfig{})
			dir := InvitesDir(srvHome.dir)
			tok := srvHome.invite(t, "laptop", srv.addr)
			srvHome.invite(t, "desk", srv.addr)
			lockFile = mode.lock
			t.Cleanup(func() { lockFile = keydir.LockFile })
			claim := claimNow(t, srvHome, srv, "laptop", tok)
			if !srv.handler.release(claim, filepath.Join(dir, "laptop.json")) {
				t.Errorf("release says the invitation is not pending again:\n%s", srv.log)
			}
			if c := claimsOf(dir, "laptop"); len(c) != 0 {
				t.Fatalf("claims left: %v", c)
			}
			if _, err := newHome(t).join(t, tok); err != nil {
				t.Fatalf("the token of the invitation given back: %v", err)
			}
			if mode.name == "no flock" {
				if inv, err := RevokeInvite(dir, "desk"); err != nil || inv.Name != "desk" {
					t.Fatalf("revoking without flock: %v, %v", inv, err)
				}
			} else if _, err := RevokeInvite(dir, "desk"); err == nil || !strings.Contains(err.Error(), `enroll: invitation "desk" not revoked: flock `) {
				t.Fatalf("revoking with a lock that fails: %v", err)
			}
		})
	}
}

// checkRevoked checks that the invitation "laptop" of dir, at pending,
// is revoked for good: not pending, no claim of it left, its token
// unknown to the server.
func checkRevoked(t *testing.T, dir, pending string, tok Token) {
	t.Helper()
	if _, err := os.Lstat(pending); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the revoked invitation is pending again (%v)", err)
	}
	if c := claimsOf(dir, "laptop"); len(c) != 0 {
		t.Fatalf("claims left: %v", c)
	}
	if _, err := newHome(t).join(t, tok); !errors.Is(err, ErrUnknown) {
		t.Fatalf("the revoked token: %v", err)
	}
}

// lockModes are the ways the invitations' lock can be: flock(2), a file
// system without it, a lock that fails. Each sets lockFile until the
// test ends.
var lockModes = []struct {
	name string
	lock func(string) (func(), bool, error)
}{
	{"flock", keydir.LockFile},
	{"no flock", func(string) (func(), bool, error) { return func() {}, false, nil }},
	{"lock fails", func(p string) (func(), bool, error) {
		return nil, false, &fs.PathError{Op: "flock", Path: p, Err: errors.New("input/output error")}
	}},
}

// TestFailedWriteKeepsTheInvitation: when the client's key cannot be
// written (the disk is full), the enrollment fails and its invitation
// stays pending — with or without the invitations' lock — and the same
// token enrolls once the server can write. Before: without flock the
// failed attempt used the invitation up.
func TestFailedWriteKeepsTheInvitation(t *testing.T) {
	for _, mode := range lockModes {
		t.Run(mode.name, func(t *testing.T) {
			srvHome, cli := newHome(t), newHome(t)
			store := &failingStore{}
			store.fail.Store(1)
			srv := startServer(t, srvHome, serverConfig{store: func(c ClientStore) ClientStore { store.ClientStore = c; return store }})
			tok := srvHome.invite(t, "laptop", srv.addr)
			lockFile = mode.lock
			t.Cleanup(func() { lockFile = keydir.LockFile })
			_, err := cli.join(t, tok)
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason != ReasonInternal {
				t.Fatalf("join while the key cannot be written: %v", err)
			}
			if invs, _ := ListInvites(InvitesDir(srvHome.dir)); len(invs) != 1 || invs[0].Status(time.Now()) != "pending" {
				t.Fatalf("the invitation is not pending after the failed write: %+v\n%s", invs, srv.log)
			}
			if c := claimsOf(InvitesDir(srvHome.dir), "laptop"); len(c) != 0 {
				t.Fatalf("claims left: %v", c)
			}
			if _, err := cli.join(t, tok); err != nil {
				t.Fatalf("the same token once the key can be written: %v\n%s", err, srv.log)
			}
			if _, err := newHome(t).join(t, tok); !errors.Is(err, ErrAlreadyUsed) {
				t.Fatalf("the token again, by another client: %v", err)
			}
		})
	}
}

// failingStore is a ClientStore whose first fail calls to Add fail, as
// a full disk does; the others add to the store. during, if set, runs at
// each call first (something done while the key is added).
type failingStore struct {
	ClientStore
	fail   atomic.Int32
	during func()
}

func (s *failingStore) Add(k *jwk.Key, name string, mode authkeys.AddMode) (*authkeys.Entry, error) {
	if s.during != nil {
		s.during()
	}
	if s.fail.Add(-1) >= 0 {
		return nil, &fs.PathError{Op: "write", Path: name + ".json", Err: errors.New("no space left on device")}
	}
	return s.ClientStore.Add(k, name, mode)
}

// TestConcurrentClaims: clients presenting one token at once — the
// first whose key is added failing, so that it gives the invitation
// back while the others claim it — enroll one key at most, with or
// without the invitations' lock; if none did, the invitation is pending
// and the token enrolls one more client, then no other. Run it with
// -race.
func TestConcurrentClaims(t *testing.T) {
	const clients = 8
	for _, mode := range lockModes {
		t.Run(mode.name, func(t *testing.T) {
			srvHome := newHome(t)
			store := &failingStore{}
			store.fail.Store(1)
			srv := startServer(t, srvHome, serverConfig{limits: Limits{PerAddressBurst: 100, GlobalBurst: 100},
				store: func(c ClientStore) ClientStore { store.ClientStore = c; return store }})
			tok := srvHome.invite(t, "laptop", srv.addr)
			lockFile = mode.lock
			t.Cleanup(func() { lockFile = keydir.LockFile })
			homes := make([]*home, clients)
			for i := range homes {
				homes[i] = newHome(t)
			}
			var wins atomic.Int32
			var wg sync.WaitGroup
			for _, cli := range homes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := cli.join(t, tok)
					var re *RefusedError
					switch {
					case err == nil:
						wins.Add(1)
					case errors.As(err, &re) && (re.Reason == ReasonAlreadyUsed || re.Reason == ReasonInternal):
					default:
						t.Errorf("a client presenting the token at once: %v", err)
					}
				}()
			}
			wg.Wait()
			n := wins.Load()
			if n > 1 {
				t.Fatalf("%d clients enrolled with one token", n)
			}
			if n == 0 {
				if invs, _ := ListInvites(InvitesDir(srvHome.dir)); len(invs) != 1 || invs[0].Status(time.Now()) != "pending" {
					t.Fatalf("nobody enrolled, and the invitation is not pending: %+v\n%s", invs, srv.log)
				}
				if _, err := newHome(t).join(t, tok); err != nil {
					t.Fatalf("nobody enrolled, and the token does not enroll: %v", err)
				}
			}
			if _, err := newHome(t).join(t, tok); !errors.Is(err, ErrAlreadyUsed) {
				t.Fatalf("the token once a client enrolled: %v", err)
			}
			if entries := srvHome.clients(t).Entries(); len(entries) != 1 {
				t.Fatalf("%d keys authorized, want 1: %v", len(entries), entries)
			}
		})
	}
}
