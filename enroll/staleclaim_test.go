package enroll

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir"
)

// TestStaleClaim: a server that stops between its claim and its end
// (SIGKILL, OOM, power) leaves the claim, which blocks the invitation. The
// client is told it is being used or that a server stopped while using
// it, ListInvites says since when it is claimed, and RevokeInvite removes
// it — returning it, with that time — so that it can be made again.
func TestStaleClaim(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	tok := srvHome.invite(t, "laptop", srv.addr)
	dir := InvitesDir(srvHome.dir)
	before := time.Now().Add(-time.Second)
	claim := claimNow(t, srvHome, srv, "laptop", tok) // the server stops here

	_, err := newHome(t).join(t, tok)
	if !errors.Is(err, ErrAlreadyUsed) || !strings.Contains(err.Error(), "is being used, or a server stopped while using it: ask the administrator") {
		t.Fatalf("join with a stale claim: %v", err)
	}
	invs, _ := ListInvites(dir)
	if len(invs) != 1 || invs[0].Claimed.Before(before) || invs[0].Claimed.After(time.Now()) || invs[0].Status(time.Now()) != "pending" {
		t.Fatalf("listed: %+v", invs)
	}
	listed := invs[0].Claimed
	if _, _, err := NewInvite(dir, srvHome.key(), InviteOptions{Name: "laptop", Addresses: []string{srv.addr}}); !errors.As(err, new(*InviteExistsError)) {
		t.Fatalf("a new invitation of a claimed name: %v", err)
	}
	inv, err := RevokeInvite(dir, "laptop")
	if err != nil || inv == nil || inv.Name != "laptop" || !inv.Claimed.Equal(listed) {
		t.Fatalf("RevokeInvite of a claimed invitation: %+v, %v (claimed %s)", inv, err, listed)
	}
	if _, err := os.Lstat(claim); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("claim after the revocation: %v", err)
	}
	fresh := srvHome.invite(t, "laptop", srv.addr)
	if _, err := newHome(t).join(t, fresh); err != nil {
		t.Fatalf("the new token: %v", err)
	}
	if _, err := newHome(t).join(t, tok); !errors.Is(err, ErrUnknown) && !errors.Is(err, ErrAlreadyUsed) {
		t.Fatalf("the old token: %v", err)
	}
}

// TestPruneStaleClaim: PruneInvites deletes the claims whose pending
// invitation it deleted (expired) or found gone, and returns them with
// when they were made; the old token is then unknown, not "being used".
func TestPruneStaleClaim(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	tok := srvHome.invite(t, "laptop", srv.addr)
	other := srvHome.invite(t, "desk", srv.addr)
	dir := InvitesDir(srvHome.dir)
	claim := claimNow(t, srvHome, srv, "laptop", tok)         // the server stops here
	kept := claimNow(t, srvHome, srv, "desk", other)          // a claim of a pending invitation
	removed, skipped, failed := PruneInvites(dir, time.Now()) // nothing expired
	if len(removed) != 0 || len(skipped) != 0 || len(failed) != 0 {
		t.Fatalf("prune, nothing expired: %v %v %v", removed, skipped, failed)
	}
	removed, skipped, failed = PruneInvites(dir, time.Now().Add(48*time.Hour))
	if len(removed) != 4 || len(skipped) != 0 || len(failed) != 0 {
		t.Fatalf("prune: %v %v %v", removed, skipped, failed)
	}
	var claims []string
	for _, inv := range removed {
		if strings.HasSuffix(inv.File, ".claim") {
			claims = append(claims, inv.File)
			if inv.Claimed.After(time.Now()) || time.Since(inv.Claimed) > time.Minute {
				t.Errorf("claim %s made at %s", inv.File, inv.Claimed)
			}
		}
	}
	if len(claims) != 2 || claims[0] != kept || claims[1] != claim {
		t.Fatalf("claims removed: %v", claims)
	}
	if _, err := newHome(t).join(t, tok); !errors.Is(err, ErrUnknown) {
		t.Fatalf("join after prune: %v", err)
	}
}

// TestUsedLeavesANewInvitation: a revocation and a new invitation of the
// name while an enrollment ends (between used's check of the pending file
// and its removal) wait for it, and the new invitation is kept — before,
// used removed whatever was at the path. Without flock(2) the window is
// there (docs/enrollment.md).
func TestUsedLeavesANewInvitation(t *testing.T) {
	if _, held, err := keydir.LockFile(filepath.Join(t.TempDir(), "lock")); err != nil || !held {
		t.Skip("no flock(2) here")
	}
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	tok := srvHome.invite(t, "laptop", srv.addr)
	dir := InvitesDir(srvHome.dir)
	var (
		wg     sync.WaitGroup
		fresh  Token
		revErr error
		newErr error
	)
	testHookUsed = func() {
		testHookUsed = nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, revErr = RevokeInvite(dir, "laptop")
			_, fresh, newErr = NewInvite(dir, srvHome.key(), InviteOptions{Name: "laptop", Addresses: []string{srv.addr}})
		}()
		time.Sleep(100 * time.Millisecond) // time for the revocation to get in, if it can
	}
	t.Cleanup(func() { testHookUsed = nil })
	if _, err := newHome(t).join(t, tok); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	var np *NotPendingError
	if !errors.As(revErr, &np) || np.Used.IsZero() {
		t.Errorf("the revocation, after the enrollment: %v", revErr)
	}
	if newErr != nil {
		t.Fatal(newErr)
	}
	invs, _ := ListInvites(dir)
	if len(invs) != 2 || invs[0].Status(time.Now()) != "pending" || invs[0].SecretSHA256 != hashSecret(fresh.Secret) {
		t.Fatalf("the new invitation is not pending: %+v", invs)
	}
}

// TestRevokeOrphanClaim: with no invitation pending, only a claim of the
// name (its pending file removed by a server of an earlier version, or
// the enrollment ending), RevokeInvite removes the claim and says so.
func TestRevokeOrphanClaim(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	tok := srvHome.invite(t, "laptop", srv.addr)
	dir := InvitesDir(srvHome.dir)
	claim := claimNow(t, srvHome, srv, "laptop", tok)
	if err := os.Remove(filepath.Join(dir, "laptop.json")); err != nil {
		t.Fatal(err)
	}
	_, err := RevokeInvite(dir, "laptop")
	var np *NotPendingError
	if !errors.As(err, &np) || !np.InUse || !strings.Contains(err.Error(), "a server that stopped while enrolling one") {
		t.Fatalf("revoking a claim alone: %v", err)
	}
	if _, err := os.Lstat(claim); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("claim: %v", err)
	}
}
