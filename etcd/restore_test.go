package etcd

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/etcd/internal/etcdtest"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
	clientv3 "go.etcd.io/etcd/client/v3"
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
	// The view's revision before the restore: once the Source has seen
	// the restored etcd and listed it again, src.Revision is the new
	// history's, and may be the revocation's own (CI, 2026-12-03).
	was := src.Revision()

	cli = restartEmpty(t, ms[0], "")
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice)) // 2, as in the snapshot
	if rev := put(t, cli, Key(prefix, Revoked, "alice"), keyJSON(t, alice)); rev >= was {
		t.Fatalf("the revocation is at revision %d, not below the view's %d", rev, was)
	}
	eventually(t, 20*time.Second, "a revocation written after a restore below the view is not enforced", func() bool {
		return verdict(store, alice) == authkeys.Revoked
	})
}

// TestRestoreWrittenPastTheView: etcd restored from a snapshot older
// than the view's last write, keeping its cluster ID (the same members
// and token), and written past the view's revision before the Source
// reads it again: the revision tells nothing, and the watch resumed past
// the view's revision never sent a revocation the new history wrote at a
// lower one (found by review). The view's last write (its witness: carol,
// here) read at its revision is not that write in the new history: the
// Source lists again.
func TestRestoreWrittenPastTheView(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	proxy := etcdtest.NewRelay(t, ms[0].cfg.ListenClientUrls[0].Host)
	alice, carol := keydirtest.Key(t, 1), keydirtest.Key(t, 3)
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice)) // 2: the snapshot's
	for range 4 {
		put(t, cli, "/elsewhere", []byte("x"))
	}
	put(t, cli, Key(prefix, Authorized, "carol"), keyJSON(t, carol)) // 7: the view's last write
	src := open(t, Options{Client: client(t, proxy.Endpoint()), Prefix: prefix, MaxStaleness: time.Minute, Progress: 50 * time.Millisecond})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	eventually(t, 10*time.Second, "alice not admitted", func() bool { return verdict(store, alice) == authkeys.Authorized })
	was := src.Revision()

	// Restored while the Source cannot reach it, and written past the
	// view's revision before it can.
	proxy.SetCut(true)
	cli = restartEmpty(t, ms[0], "")
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice)) // 2, as in the snapshot
	put(t, cli, Key(prefix, Revoked, "alice"), keyJSON(t, alice))    // 3
	for put(t, cli, "/elsewhere", []byte("y")) <= was {
	}
	proxy.SetCut(false)
	eventually(t, 20*time.Second, "a revocation written after a restore, below the view's revision, is not enforced", func() bool {
		return verdict(store, alice) == authkeys.Revoked
	})
}

// TestRestoreThatLostARemoval: etcd restored from a snapshot taken before
// a revocation was removed, keeping its cluster ID, and written past the
// view's revision: etcd refuses the key again, and the view, which saw
// the removal, admitted it (found by review). A removal is the view's
// last write too: its key read at the removal's revision must be absent.
func TestRestoreThatLostARemoval(t *testing.T) { restoreThatLostARemoval(t, false) }

// TestRestoreThatLostARemovalBeforeTheList is TestRestoreThatLostARemoval
// with the Source listing after the removal, as one started or restarted
// since, or listing again after a compaction, does: a list sees no
// removal, so its witness is the last key still there (carol, at 4),
// which the restore (to the snapshot at 4, keeping the cluster ID,
// written past the view) kept. etcd refuses mallory again; the view
// admitted him (found by review). The prefix's count at the list's
// revision, 2 in the list's history and 3 in the restored one, tells.
func TestRestoreThatLostARemovalBeforeTheList(t *testing.T) { restoreThatLostARemoval(t, true) }

// restoreThatLostARemoval runs the two tests above: the Source opened
// before the revocation's removal (its witness an event's), or after it
// (a list's).
func restoreThatLostARemoval(t *testing.T, listAfterRemoval bool) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	proxy := etcdtest.NewRelay(t, ms[0].cfg.ListenClientUrls[0].Host)
	mallory, carol := keydirtest.Key(t, 1), keydirtest.Key(t, 3)
	put(t, cli, Key(prefix, Authorized, "mallory"), keyJSON(t, mallory)) // 2
	put(t, cli, Key(prefix, Revoked, "mallory"), keyJSON(t, mallory))    // 3
	put(t, cli, Key(prefix, Authorized, "carol"), keyJSON(t, carol))     // 4: the snapshot's last
	if listAfterRemoval {
		del(t, cli, Key(prefix, Revoked, "mallory")) // 5: lost by the restore
	}
	src := open(t, Options{Client: client(t, proxy.Endpoint()), Prefix: prefix, MaxStaleness: time.Minute, Progress: 50 * time.Millisecond})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	if !listAfterRemoval {
		del(t, cli, Key(prefix, Revoked, "mallory")) // 5: lost by the restore
	}
	eventually(t, 10*time.Second, "mallory not admitted once his revocation was removed", func() bool { return verdict(store, mallory) == authkeys.Authorized })
	was := src.Revision()

	proxy.SetCut(true)
	cli = restartEmpty(t, ms[0], "")
	put(t, cli, Key(prefix, Authorized, "mallory"), keyJSON(t, mallory))
	put(t, cli, Key(prefix, Revoked, "mallory"), keyJSON(t, mallory))
	put(t, cli, Key(prefix, Authorized, "carol"), keyJSON(t, carol))
	for put(t, cli, "/elsewhere", []byte("y")) <= was {
	}
	proxy.SetCut(false)
	eventually(t, 20*time.Second, "a revocation a restore brought back is not enforced", func() bool {
		return verdict(store, mallory) == authkeys.Revoked
	})
}

// TestAnotherClusterBehindTheAddress: another etcd cluster answering at
// the members' addresses (a failover to another site's cluster, a
// restore under another cluster token), already past the view's revision,
// is another history: its revisions up to the view's are not the view's.
// The resumed watch sent only what that cluster wrote past the view's
// revision, and a revocation it held at a lower one was never applied
// (found by review). A cluster ID other than the list's, in a watch
// response or the check's read, makes the Source list again.
func TestAnotherClusterBehindTheAddress(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	alice := keydirtest.Key(t, 1)
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	for range 5 {
		put(t, cli, "/elsewhere", []byte("x"))
	}
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix, MaxStaleness: time.Minute, Progress: 50 * time.Millisecond})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	eventually(t, 10*time.Second, "alice not admitted", func() bool { return verdict(store, alice) == authkeys.Authorized })
	was := src.Revision()

	cli = restartEmpty(t, ms[0], "another-cluster")
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	if rev := put(t, cli, Key(prefix, Revoked, "alice"), keyJSON(t, alice)); rev > was {
		t.Fatalf("the revocation is at revision %d, past the view's %d", rev, was)
	}
	for {
		if rev := put(t, cli, "/elsewhere", []byte("y")); rev > was+1 {
			break
		}
	}
	put(t, cli, Key(prefix, Authorized, "bob"), keyJSON(t, keydirtest.Key(t, 2))) // an event past the view's revision
	eventually(t, 20*time.Second, "a revocation of another cluster now at the address is not enforced", func() bool {
		return verdict(store, alice) == authkeys.Revoked
	})
}

// TestCacheFromTheFuture: a cache whose view was current at a time later
// than now (written while the clock ran ahead, then set right) is
// refused: its age cannot be told, and taken as current then, the view
// would not turn stale for as long as the clock was ahead, a host cut
// off from etcd enforcing it, revocations missed included, past
// MaxStaleness (found by review).
func TestCacheFromTheFuture(t *testing.T) {
	alice := keydirtest.Key(t, 1)
	s := openCacheOnly(t, time.Now().Add(time.Hour).UTC(), alice)
	d := authkeys.Load(s.AuthorizedOptions()).Decide(alice.SPKIHash(), netip.Addr{})
	var ce *CacheError
	if d.Verdict != authkeys.Revoked || !errors.As(d.Err, &ce) {
		t.Fatalf("a cache current an hour from now: %v (%v), want every key refused by a CacheError", d.Verdict, d.Err)
	}
}

// TestCurrentIsMonotonic: the time a view was last known current, from a
// list or from a cache another process wrote, carries this process's
// monotonic clock reading, so its age is not read from the wall clock: a
// clock stepped back (NTP, an admin) would otherwise keep a view cut off
// from etcd fresh, revocations missed, past MaxStaleness by as much as the
// step (found by review; Time.String shows the reading as "m=").
func TestCurrentIsMonotonic(t *testing.T) {
	written := time.Now().Add(-time.Second).UTC()
	s := openCacheOnly(t, written, keydirtest.Key(t, 1))
	cur := s.Current()
	if !strings.Contains(cur.String(), " m=") {
		t.Errorf("current from the cache: %v has no monotonic reading", cur)
	}
	if !cur.Equal(written) {
		t.Errorf("current from the cache: %v, want the cache's %v", cur, written)
	}

	ms := startCluster(t, 1)
	listed := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix})
	if cur := listed.Current(); cur.IsZero() || !strings.Contains(cur.String(), " m=") {
		t.Errorf("current from a list: %v has no monotonic reading", cur)
	}
}

// openCacheOnly opens a Source of a cache current at current that
// authorizes alice, with no etcd at the address it is given: the cache is
// all there is.
func openCacheOnly(t *testing.T, current time.Time, alice *jwk.Key) *Source {
	t.Helper()
	cache := filepath.Join(t.TempDir(), "cache.json")
	data, err := json.Marshal(cacheFile{Format: cacheFormat, Prefix: prefix, Revision: 5, Current: current,
		Entries: map[string][]byte{"authorized_keys/alice": keyJSON(t, alice)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cache, data, 0o600); err != nil {
		t.Fatal(err)
	}
	nowhere := loopback(t)
	s, err := Open(t.Context(), Options{Client: client(t, nowhere.String()), Prefix: prefix, Cache: cache, MaxStaleness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// restartEmpty stops m and starts it again at the same URLs on an empty
// data directory — what a restore from a snapshot older than every write
// here is to a client, the test then writing the snapshot's part again —
// as a cluster of its own if token is not "", and returns a client of it.
func restartEmpty(t *testing.T, m *member, token string) *clientv3.Client {
	t.Helper()
	m.stop()
	m.cfg.Dir = filepath.Join(t.TempDir(), "restored")
	if token != "" {
		m.cfg.InitialClusterToken = token
	}
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	return client(t, m.endpoint())
}
