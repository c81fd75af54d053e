package enroll

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
)

// claimNow claims the pending invitation name of h as the handler of srv
// does when a client presents its token, and leaves the claim in
// progress: a client being enrolled at this moment.
func claimNow(t *testing.T, h *home, srv *server, name string) string {
	t.Helper()
	claim, err := srv.handler.claim(filepath.Join(InvitesDir(h.dir), name+".json"), name)
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
		srvHome.invite(t, other, srv.addr)
		claimNow(t, srvHome, srv, other)
		_, err := newHome(t).join(t, tok)
		if !errors.Is(err, ErrAlreadyUsed) || !strings.Contains(err.Error(), "already used, at ") {
			t.Fatalf("while %q is being claimed: %v", other, err)
		}
	}
}

// TestRevokeWhileClaimed: revoking an invitation while a client presents
// its token holds even if that enrollment then fails, when the handler
// puts a claimed invitation back; the revocation says that a client was
// presenting the token.
func TestRevokeWhileClaimed(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	tok := srvHome.invite(t, "laptop", srv.addr)
	dir := InvitesDir(srvHome.dir)
	claim := claimNow(t, srvHome, srv, "laptop")
	_, err := RevokeInvite(dir, "laptop")
	var np *NotPendingError
	if !errors.As(err, &np) || !np.InUse || !strings.Contains(err.Error(), "being used by a client at that moment") {
		t.Fatalf("revoking a claimed invitation: %v", err)
	}
	// Adding the key fails (as when the name is taken): the handler puts
	// the invitation back if it can.
	srv.handler.unclaim(claim, filepath.Join(dir, "laptop.json"))
	if _, err := newHome(t).join(t, tok); !errors.Is(err, ErrUnknown) {
		t.Fatalf("the revoked token, after the enrollment in progress failed: %v", err)
	}
	if !strings.Contains(srv.log.String(), "not restored") {
		t.Errorf("log:\n%s", srv.log)
	}
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
	if _, err := newHome(t).join(t, old); !errors.Is(err, ErrWrongSecret) {
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
// its claim is deleted: a failure during the revocation waits for it, and
// finds its claim gone. Each case is driven step by step through
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
			var failed <-chan struct{}
			testHookRevoke = func(step string) {
				switch {
				case step == "remove" && claim == "":
					claim = claimNow(t, srvHome, srv, "laptop")
				case step == failsAt && failed == nil:
					// The enrollment in progress fails (as when the
					// name is taken): the handler puts the invitation
					// back if it can.
					failed = alongside(func() { srv.handler.unclaim(claim, pending) })
				}
			}
			inv, err := RevokeInvite(dir, "laptop")
			testHookRevoke = nil
			if failed == nil {
				srv.handler.unclaim(claim, pending)
			} else {
				<-failed
			}
			if np := (*NotPendingError)(nil); !errors.As(err, &np) || !np.InUse {
				t.Fatalf("revoking an invitation claimed meanwhile: %v, %v", inv, err)
			}
			checkRevoked(t, dir, pending, tok)
		})
	}
}

// unclaimWaits, while set, is told (once) that an unclaim is about to
// take the invitations' lock: see alongside.
var unclaimWaits atomic.Pointer[chan struct{}]

func init() {
	testHookUnclaim = func() {
		if c := unclaimWaits.Load(); c != nil {
			select {
			case *c <- struct{}{}:
			default:
			}
		}
	}
}

// alongside runs fn, a client's enrollment going on at this moment, in
// another goroutine, and returns once fn has returned or is about to
// wait for the invitations' lock (to put a claimed invitation back) —
// which the caller, a test hook inside RevokeInvite, may hold, so that
// waiting for fn to return would never end. The channel returned is
// closed when fn has returned.
func alongside(fn func()) <-chan struct{} {
	waits, done := make(chan struct{}, 1), make(chan struct{})
	unclaimWaits.Store(&waits)
	defer unclaimWaits.Store(nil)
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-waits:
	case <-done:
	}
	return done
}

// TestRevokeRacingTwoClients: two clients hold the token of one
// invitation. The first has claimed it when RevokeInvite runs; while
// RevokeInvite deletes the claims it found, the first client's
// enrollment fails and puts the invitation back, and the second claims
// it. The second's enrollment then fails too: the revoked invitation must
// not be pending again, nor its token work.
func TestRevokeRacingTwoClients(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	tok := srvHome.invite(t, "laptop", srv.addr)
	dir := InvitesDir(srvHome.dir)
	pending := filepath.Join(dir, "laptop.json")
	first := claimNow(t, srvHome, srv, "laptop")
	var second string
	var secondErr error
	var done <-chan struct{}
	testHookRevoke = func(step string) {
		if step != "claim" || done != nil {
			return
		}
		done = alongside(func() {
			srv.handler.unclaim(first, pending) // the first fails
			second, secondErr = srv.handler.claim(pending, "laptop")
		})
	}
	t.Cleanup(func() { testHookRevoke = nil })
	_, err := RevokeInvite(dir, "laptop")
	testHookRevoke = nil
	if done == nil {
		t.Fatal("RevokeInvite found no claim to delete")
	}
	<-done
	var np *NotPendingError
	if !errors.As(err, &np) || !np.InUse {
		t.Errorf("revoking an invitation claimed by a client: %v", err)
	}
	if secondErr == nil {
		srv.handler.unclaim(second, pending) // the second fails
	} else if !errors.Is(secondErr, fs.ErrNotExist) {
		t.Fatal(secondErr)
	}
	checkRevoked(t, dir, pending, tok)
}

// TestRevokeDeletesAnOlderClaim: revoking an invitation deletes the
// claims of its name too, even if it was pending: a claim of an earlier
// invitation of the same name, whose client was still being enrolled
// when the new one was made, is not put back in its place when that
// enrollment fails — the old token does not work again.
func TestRevokeDeletesAnOlderClaim(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	dir := InvitesDir(srvHome.dir)
	old := srvHome.invite(t, "laptop", srv.addr)
	claim := claimNow(t, srvHome, srv, "laptop")
	fresh := srvHome.invite(t, "laptop", srv.addr)
	inv, err := RevokeInvite(dir, "laptop")
	if err != nil || inv.SecretSHA256 != hashSecret(fresh.Secret) {
		t.Fatalf("revoking the new invitation: %v, %v", inv, err)
	}
	srv.handler.unclaim(claim, filepath.Join(dir, "laptop.json")) // the old one's enrollment fails
	for _, tok := range []Token{old, fresh} {
		if _, err := newHome(t).join(t, tok); !errors.Is(err, ErrUnknown) {
			t.Fatalf("a token of the revoked name: %v", err)
		}
	}
}

// TestUnclaimWithoutTheLock: where the invitations cannot be locked — a
// file system without flock(2), or a lock that fails — a failed
// enrollment does not put its invitation back, since a revocation could
// be under way and nothing would exclude it: the attempt used the
// invitation up, and the log says why. RevokeInvite still revokes.
func TestUnclaimWithoutTheLock(t *testing.T) {
	for _, tc := range []struct {
		name string
		lock func(string) (func(), bool, error)
		why  string
	}{
		{"no flock", func(string) (func(), bool, error) { return func() {}, false, nil }, "no locks"},
		{"lock fails", func(p string) (func(), bool, error) {
			return nil, false, &fs.PathError{Op: "flock", Path: p, Err: errors.New("input/output error")}
		}, "input/output error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvHome := newHome(t)
			srv := startServer(t, srvHome, serverConfig{})
			dir := InvitesDir(srvHome.dir)
			tok := srvHome.invite(t, "laptop", srv.addr)
			srvHome.invite(t, "desk", srv.addr)
			lockFile = tc.lock
			t.Cleanup(func() { lockFile = keydir.LockFile })
			claim := claimNow(t, srvHome, srv, "laptop")
			srv.handler.unclaim(claim, filepath.Join(dir, "laptop.json"))
			if _, err := os.Lstat(filepath.Join(dir, "laptop.json")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the invitation was put back without the lock (%v)", err)
			}
			if c := claimsOf(dir, "laptop"); len(c) != 0 {
				t.Fatalf("claims left: %v", c)
			}
			if log := srv.log.String(); !strings.Contains(log, "not restored") || !strings.Contains(log, tc.why) {
				t.Errorf("log:\n%s", log)
			}
			if _, err := newHome(t).join(t, tok); !errors.Is(err, ErrUnknown) {
				t.Fatalf("the token of the invitation not put back: %v", err)
			}
			if tc.name == "no flock" {
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
