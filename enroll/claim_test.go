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
