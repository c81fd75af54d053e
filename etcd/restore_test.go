package etcd

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestRestoreBelowTheView: etcd restored from a snapshot older than the
// view (etcdutl snapshot restore without --bump-revision; here a member at
// the same URLs with a new data directory, given the writes up to the
// snapshot) is at a revision below the view's. The resumed watch waits for
// revisions past the view's, so a revocation written after the restore, at
// a revision the view had passed, was never applied, and the check took a
// revision at or below the view's for "nothing happened since": the view
// was confirmed current for ever, admitting a revoked key (found by
// review). A revision below the view's is a history the view is not of:
// the Source lists the prefix again.
func TestRestoreBelowTheView(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	alice := keydirtest.Key(t, 1)
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice)) // revision 2: the snapshot's
	for range 5 {
		put(t, cli, "/elsewhere", []byte("x")) // 3–7: lost by the restore
	}
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix, MaxStaleness: time.Minute, Progress: 50 * time.Millisecond})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	eventually(t, 10*time.Second, "alice not admitted", func() bool { return verdict(store, alice) == authkeys.Authorized })

	ms[0].stop()
	ms[0].cfg.Dir = filepath.Join(t.TempDir(), "restored")
	if err := ms[0].start(); err != nil {
		t.Fatal(err)
	}
	cli = client(t, ms[0].endpoint())
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice)) // 2, as in the snapshot
	if rev := put(t, cli, Key(prefix, Revoked, "alice"), keyJSON(t, alice)); rev >= src.Revision() {
		t.Fatalf("the revocation is at revision %d, not below the view's %d", rev, src.Revision())
	}
	eventually(t, 20*time.Second, "a revocation written after a restore below the view is not enforced", func() bool {
		return verdict(store, alice) == authkeys.Revoked
	})
}
