package enroll

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestUnreadableClaimNotCharged: a claim that cannot be read once made is
// the server's fault, met by the right token only — its secret opened the
// pending file a moment before, and the claim is a link of that file. It
// was answered and charged as a wrong secret (e52c57b's follow-up): the
// token's holder, retrying, used up its address's failures and everyone's
// (here a burst of 2 each), and was then refused 429 with the right token
// once the fault was fixed — a fault of the server that locked the
// legitimate client, and every other, out. It is now answered internal,
// uncharged, and the invitation stays pending for the next try.
func TestUnreadableClaimNotCharged(t *testing.T) {
	t0 := time.Now()
	f := newFailure(t, serverConfig{now: func() time.Time { return t0 }, limits: Limits{PerAddressBurst: 2, GlobalBurst: 2}})
	pending := filepath.Join(InvitesDir(f.srvHome.dir), "laptop.json")
	// The pending file, read, is opened to all before it is claimed: the
	// claim, the same file, is refused by the strict-modes rule.
	testHookBeforeClaim = func() {
		if err := os.Chmod(pending, 0o666); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { testHookBeforeClaim = nil })
	const n = 3 // more than either burst
	for i := range n {
		_, err := f.cli.join(t, f.tok)
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != ReasonInternal {
			t.Errorf("attempt %d, the claim unreadable: %v; want %s\n%s", i+1, err, ReasonInternal, f.srv.log)
		}
		if err := os.Chmod(pending, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testHookBeforeClaim = nil
	if _, err := f.cli.join(t, f.tok); err != nil {
		t.Fatalf("the right token once the fault is fixed, after %d attempts that met it: %v\n%s", n, err, f.srv.log)
	}
}
