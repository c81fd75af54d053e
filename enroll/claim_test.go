package enroll

import (
	"errors"
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
