package enroll

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
// it fails after the revocation, before the claims are deleted, or while
// they are. Each case is driven step by step through testHookRevoke.
func TestRevokeRacingAClaim(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	dir := InvitesDir(srvHome.dir)
	pending := filepath.Join(dir, "laptop.json")
	t.Cleanup(func() { testHookRevoke = nil })
	for _, tc := range []struct {
		name string
		// atClaims runs before RevokeInvite deletes the claims, which the
		// client made after the invitation was read.
		atClaims func(claim string)
		// inUse: the revocation found the claim, and says a client was
		// presenting the token; otherwise it deleted the invitation put
		// back, and returns it.
		inUse bool
	}{
		{"fails after", func(string) {}, true},
		// The handler put it back (unclaim) before the claims were
		// deleted: it is deleted again.
		{"fails before", func(claim string) { srv.handler.unclaim(claim, pending) }, false},
		// The handler linked it back, but has not deleted its claim yet:
		// both are deleted.
		{"fails during", func(claim string) {
			if err := os.Link(claim, pending); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := srvHome.invite(t, "laptop", srv.addr)
			var claim string
			testHookRevoke = func(step string) {
				switch {
				case step == "remove" && claim == "":
					claim = claimNow(t, srvHome, srv, "laptop")
				case step == "claims" && claim != "":
					tc.atClaims(claim)
				}
			}
			inv, err := RevokeInvite(dir, "laptop")
			testHookRevoke = nil
			var np *NotPendingError
			switch {
			case tc.inUse && !(errors.As(err, &np) && np.InUse):
				t.Fatalf("revoking an invitation claimed meanwhile: %v, %v", inv, err)
			case !tc.inUse && (err != nil || inv == nil || inv.Name != "laptop"):
				t.Fatalf("revoking an invitation put back meanwhile: %v, %v", inv, err)
			}
			// The enrollment in progress fails (as when the name is
			// taken): the handler puts the invitation back if it can.
			srv.handler.unclaim(claim, pending)
			if _, err := os.Lstat(pending); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the revoked invitation is pending again (%v)", err)
			}
			if c := claimsOf(dir, "laptop"); len(c) != 0 {
				t.Fatalf("claims left: %v", c)
			}
			if _, err := newHome(t).join(t, tok); !errors.Is(err, ErrUnknown) {
				t.Fatalf("the revoked token: %v", err)
			}
		})
	}
}

// TestRevokeKeptPuttingBack: an invitation that failed enrollments put
// back each time RevokeInvite deletes it is not reported revoked, nor
// deleted forever: RevokeInvite gives up after revokeRounds, and says so.
func TestRevokeKeptPuttingBack(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	dir := InvitesDir(srvHome.dir)
	pending := filepath.Join(dir, "laptop.json")
	srvHome.invite(t, "laptop", srv.addr)
	var claim string
	rounds := 0
	testHookRevoke = func(step string) {
		switch step {
		case "remove":
			rounds++
			claim = claimNow(t, srvHome, srv, "laptop")
		case "claims":
			srv.handler.unclaim(claim, pending)
		}
	}
	t.Cleanup(func() { testHookRevoke = nil })
	inv, err := RevokeInvite(dir, "laptop")
	var raced *RevokeRacedError
	if !errors.As(err, &raced) || raced.Name != "laptop" || raced.Dir != dir || raced.Rounds != revokeRounds || rounds != revokeRounds || !strings.Contains(err.Error(), "revoke it again") {
		t.Fatalf("after %d rounds: %v, %v", rounds, inv, err)
	}
	if _, err := os.Lstat(pending); err != nil {
		t.Fatalf("the invitation put back the last time is not pending, as the error says it is: %v", err)
	}
}
