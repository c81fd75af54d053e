package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/keytool/keytool/etcd/internal/etcdtest"
	"github.com/keytool/keytool/internal/cli"
)

// openTestStore opens the etcd store at etcd://addr/kt with the flags
// given (connection flags).
func openTestStore(t testing.TB, addr string, flags ...string) *store {
	t.Helper()
	return openTestStoreAt(t, "etcd://"+addr+"/kt", flags...)
}

// openTestStoreAt opens the etcd store at rawURL with the flags given
// (connection flags: --etcd-cacert, --etcd-user…).
func openTestStoreAt(t testing.TB, rawURL string, flags ...string) *store {
	t.Helper()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	open := etcdFlags(fs)
	if err := fs.Parse(flags); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	st, err := open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*store)
}

// markOf is the mark of a listing, without a witness: Top its entries'
// highest revision.
func markOf(l cli.StoreListing) cli.StoreMark {
	k := cli.StoreMark{Identity: l.Identity, Revision: l.Revision, Count: l.Count}
	for _, e := range l.Entries {
		k.Top = max(k.Top, e.Revision)
	}
	return k
}

// TestChangesSince: what changed under the prefix since a revision, as
// the mirror needs it — each entry put since with its last value (one
// removed and made again among them), each one removed, nothing outside
// the prefix or its layout — and nothing at all when nothing was written;
// a compacted revision is cli.ErrStoreCompacted. The same read from the
// prefix's range (a small prefix's way) and by a watch from the revision
// (a large one's), which must give the same delta.
func TestChangesSince(t *testing.T) {
	for _, watch := range []bool{false, true} {
		t.Run(fmt.Sprintf("watch=%v", watch), func(t *testing.T) { changesSince(t, watch) })
	}
}

// watchAll makes s read every delta by a watch (watch) or by reads. A
// watch is waited for however long it takes to answer (an hour, past go
// test's -timeout): the tests assert which way each delta came, and the
// package's 2 s is a bound on a machine's speed — under the race detector,
// clientv3's Authenticate for the watch's stream with --etcd-user (a
// bcrypt check on the member, before etcd.KeepLogin kept the dial's login)
// took 2–4 s alone, the range was read, and
// TestChangesSinceUnderARoleOnThePrefix failed.
func watchAll(s *store, watch bool) {
	s.watchFrom = math.MaxInt64
	if watch {
		s.watchFrom, s.watchWait = 0, time.Hour
	}
}

func changesSince(t *testing.T, watch bool) {
	addr := startEtcd(t, nil)
	c := etcdClient(t, addr)
	s := openTestStore(t, addr)
	watchAll(s, watch)
	ctx := context.Background()
	del := func(key string) {
		t.Helper()
		if _, err := c.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"a", "b", "c", "e"} {
		mustPut(t, c, "/kt/authorized_keys/"+k+".json", k+"0")
	}
	l, err := s.ListRevisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.ChangesSince(ctx, markOf(l))
	if err != nil || d.Revision != l.Revision || len(d.Put)+len(d.Removed) != 0 {
		t.Fatalf("nothing written since: %+v, %v", d, err)
	}
	del("/kt/authorized_keys/b.json")
	del("/kt/authorized_keys/c.json")
	mustPut(t, c, "/kt/authorized_keys/c.json", "c1") // removed and made again
	mustPut(t, c, "/kt/revoked_keys/d.json", "d1")
	mustPut(t, c, "/kt/authorized_keys/e.json", "e1")
	mustPut(t, c, "/kt/authorized_keys/e.json", "e2")
	mustPut(t, c, "/kt/authorized_keys/f.json", "f1")
	del("/kt/authorized_keys/f.json") // made and removed since: no change
	mustPut(t, c, "/ktx/authorized_keys/g.json", "g1")
	mustPut(t, c, "/kt/notakind", "x")
	d, err = s.ChangesSince(ctx, markOf(l))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range d.Put {
		got = append(got, fmt.Sprintf("put %s/%s=%s", e.Kind, e.Name, e.Value))
	}
	for _, e := range d.Removed {
		got = append(got, fmt.Sprintf("removed %s/%s", e.Kind, e.Name))
	}
	slices.Sort(got)
	want := []string{"put authorized_keys/c.json=c1", "put authorized_keys/e.json=e2", "put revoked_keys/d.json=d1", "removed authorized_keys/b.json"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes since %d:\n%s\nwant\n%s", l.Revision, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if now, err := c.Get(ctx, "/kt/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || d.Revision != now.Header.Revision || d.Count != now.Count {
		t.Fatalf("the delta is at revision %d with %d keys, etcd at %v (%v)", d.Revision, d.Count, now, err)
	}
	if want := map[bool]int{false: 0, true: 1}[watch]; s.watched != want {
		t.Fatalf("%d deltas by a watch, want %d", s.watched, want)
	}
	if _, err := s.ChangesSince(ctx, cli.StoreMark{Identity: "etcd cluster 0", Revision: l.Revision, Top: markOf(l).Top}); err != nil {
		t.Fatalf("another cluster's identity: %v (the caller sees the identity)", err)
	}
	if _, err := c.Compact(ctx, d.Revision); err != nil {
		t.Fatal(err)
	}
	mustPut(t, c, "/kt/authorized_keys/h.json", "h1")
	if _, err := s.ChangesSince(ctx, markOf(l)); !errors.Is(err, cli.ErrStoreCompacted) {
		t.Fatalf("changes since a compacted revision: %v, want cli.ErrStoreCompacted", err)
	}
}

// TestChangesSinceUnderARoleOnThePrefix: an administrator whose etcd role
// is read-write on PREFIX/ (docs/fleet.md's advice) edits through a warm
// mirror: ChangesSince reads only that range, by reads and by a watch
// (watchAll waits for it).
// (Found by review: it read the key PREFIX itself, which the role does
// not cover, and every warm edit was refused.)
func TestChangesSinceUnderARoleOnThePrefix(t *testing.T) {
	m := startTLSEtcd(t) // --etcd-user only over TLS
	pw := adminOnPrefix(t, m.client(t, false))
	ctx := context.Background()
	for _, watch := range []bool{false, true} {
		// The dial authenticates (a bcrypt check, 2–3 s under the race
		// detector): waited for, not bounded by the default 5 s.
		s := m.openStore(t, "--etcd-user", "adm", "--etcd-password-file", pw, "--etcd-dial-timeout", "1h")
		watchAll(s, watch)
		l, err := s.ListRevisions(ctx)
		if err != nil {
			t.Fatalf("ListRevisions: %v", err)
		}
		name := fmt.Sprintf("a%v.json", watch)
		if _, err := s.Apply(ctx, []cli.StoreChange{{Kind: "authorized_keys", Name: name, Value: []byte("a")}}); err != nil {
			t.Fatal(err)
		}
		d, err := s.ChangesSince(ctx, markOf(l))
		if err != nil {
			t.Fatalf("ChangesSince with a role on PREFIX/ (watch %v): %v", watch, err)
		}
		if len(d.Put) != 1 || d.Put[0].Name != name || s.watched != map[bool]int{false: 0, true: 1}[watch] {
			t.Fatalf("changes (watch %v): %+v, %d by a watch", watch, d, s.watched)
		}
	}
}

// adminOnPrefix makes, in the member of c (a client without a user),
// user root (password "rootpw") and user adm of role keytool-admin,
// read-write on /kt/ and nothing else, turns authentication on, and
// returns a password file of adm's for --etcd-password-file.
func adminOnPrefix(t testing.TB, c *clientv3.Client) string {
	t.Helper()
	etcdtest.UserOnPrefix(t, c, "adm", "admpw", "keytool-admin", "/kt/", clientv3.PermissionType(clientv3.PermReadWrite))
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("admpw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return pw
}

// TestEntriesAtManyEntries: more entries than etcd takes in one
// transaction (--max-txn-ops, 128 by default, the test member's) are read
// in several, all at the revision asked, whatever was written since.
// (Found by review: one transaction of a Get per entry, refused past 128.)
func TestEntriesAtManyEntries(t *testing.T) {
	addr := startEtcd(t, nil)
	c := etcdClient(t, addr)
	s := openTestStore(t, addr)
	ctx := context.Background()
	const n = 300
	var entries []cli.StoreEntry
	for i := range n {
		e := cli.StoreChange{Kind: "authorized_keys", Name: fmt.Sprintf("k%03d.json", i), Value: fmt.Appendf(nil, "v%d", i)}
		if _, err := s.Apply(ctx, []cli.StoreChange{e}); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, cli.StoreEntry{Kind: e.Kind, Name: e.Name})
	}
	entries = append(entries, cli.StoreEntry{Kind: "authorized_keys", Name: "new.json"})
	l, err := s.ListRevisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k000", "k150", "k299", "new"} {
		if _, err := c.Put(ctx, "/kt/authorized_keys/"+k+".json", "later"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Delete(ctx, "/kt/authorized_keys/k200.json"); err != nil {
		t.Fatal(err)
	}
	if err := s.EntriesAt(ctx, l.Revision, entries); err != nil {
		t.Fatalf("EntriesAt of %d entries: %v", len(entries), err)
	}
	for i, e := range entries[:n] {
		if want := fmt.Sprintf("v%d", i); string(e.Value) != want || e.Revision != int64(i+2) {
			t.Fatalf("%s at revision %d: %q at %d, want %q at %d", e.Name, l.Revision, e.Value, e.Revision, want, i+2)
		}
	}
	if last := entries[n]; last.Value != nil || last.Revision != 0 {
		t.Fatalf("new.json, made after revision %d: %q at %d", l.Revision, last.Value, last.Revision)
	}
}

// TestApplyPastTheTransactionLimit: a change of more entries than etcd
// takes in one transaction is refused whole, naming the limit (it is not
// split: a change is all or nothing); one of 128 is written.
func TestApplyPastTheTransactionLimit(t *testing.T) {
	addr := startEtcd(t, nil)
	c := etcdClient(t, addr)
	s := openTestStore(t, addr)
	ctx := context.Background()
	changes := func(n int) []cli.StoreChange {
		var cs []cli.StoreChange
		for i := range n {
			cs = append(cs, cli.StoreChange{Kind: "revoked_keys", Name: fmt.Sprintf("r%03d.json", i), Value: []byte("r")})
		}
		return cs
	}
	_, err := s.Apply(ctx, changes(129))
	if err == nil || !strings.Contains(err.Error(), "touches 129 entries") || !strings.Contains(err.Error(), "--max-txn-ops, 128 by default") {
		t.Fatalf("129 changes: %v", err)
	}
	if r, err := c.Get(ctx, "/kt/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || r.Count != 0 {
		t.Fatalf("after a refused change: %v keys (%v)", r, err)
	}
	if _, err := s.Apply(ctx, changes(128)); err != nil {
		t.Fatalf("128 changes: %v", err)
	}
}

// TestEntriesAtUnderALowerLimit: a member set to take fewer operations in
// a transaction than etcd's default (--max-txn-ops 20 here) refuses a
// batch of 128 reads; EntriesAt reads it again in halves, all pinned at
// the revision asked, instead of failing the command with etcd's "too
// many operations" (found by review).
func TestEntriesAtUnderALowerLimit(t *testing.T) {
	e := startEtcdConfig(t, loopbackURL(t), loopbackURL(t), nil, func(cfg *embed.Config) { cfg.MaxTxnOps = 20 })
	t.Cleanup(e.Close)
	addr := e.Config().ListenClientUrls[0].Host
	c := etcdClient(t, addr)
	s := openTestStore(t, addr)
	ctx := context.Background()
	const n = 150
	var entries []cli.StoreEntry
	for i := range n {
		if _, err := c.Put(ctx, fmt.Sprintf("/kt/authorized_keys/k%03d.json", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, cli.StoreEntry{Kind: "authorized_keys", Name: fmt.Sprintf("k%03d.json", i)})
	}
	l, err := s.ListRevisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/kt/authorized_keys/k007.json", "later"); err != nil {
		t.Fatal(err)
	}
	if err := s.EntriesAt(ctx, l.Revision, entries); err != nil {
		t.Fatalf("EntriesAt of %d entries from a member taking 20 operations a transaction: %v", n, err)
	}
	for i, e := range entries {
		if want := fmt.Sprintf("v%d", i); string(e.Value) != want {
			t.Fatalf("%s at revision %d: %q, want %q", e.Name, l.Revision, e.Value, want)
		}
	}
}

// TestSyncedProgress: only the etcd versions that send a progress
// notification once a watch has caught up (3.5.8, 3.4.25 and later:
// etcd issue 15220) are trusted with a watch from the past; anything else,
// unreadable included, makes ChangesSince read the range.
func TestSyncedProgress(t *testing.T) {
	for v, want := range map[string]bool{
		"3.5.8": true, "3.5.21": true, "3.6.0": true, "3.7.3": true, "3.4.25": true, "4.0.0": true, "3.6.0-rc.1": true,
		"3.5.7": false, "3.5.0": false, "3.4.24": false, "3.3.27": false, "2.3.8": false, "": false, "3.5": false, "v3.5.8": false,
	} {
		if got := syncedProgress(v); got != want {
			t.Errorf("syncedProgress(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestWatches: a watch reads the changes of a prefix of watchFrom keys or
// more, unless more revisions than the prefix's keys have passed since
// the mark (etcd's resync would read every one of them).
func TestWatches(t *testing.T) {
	s := &store{watchFrom: watchFrom}
	for _, c := range []struct {
		count, since int64
		want         bool
	}{
		{100_000, 1, true}, {100_000, 99_999, true}, {100_000, 100_000, false},
		{watchFrom, 1, true}, {watchFrom - 1, 1, false}, {1, 1, false},
	} {
		if got := s.watches(cli.StoreMark{Revision: 50, Count: c.count}, 50+c.since); got != c.want {
			t.Errorf("%d keys, %d revisions since: watches %v, want %v", c.count, c.since, got, c.want)
		}
	}
}

// TestChangesSinceCompactedAtTheNextRevision: etcd compacted at R+1
// before a catch-up from R has read the history since — an operator's
// `etcdctl compact` of the revision now, just after a revocation at R+1 —
// keeps that removal. A watch from R+1 is allowed at compaction R+1 and
// reads etcd's database from there: this holds only because a compaction
// keeps a tombstone at its own revision (mvcc's keyIndex.compact; its
// hash's keep drops it). etcd reads the history for a watch from the past
// only at its next resync of such watches, after the watch is made; the
// compaction runs just before the watch is made (beforeWatch), so that
// the resync comes after it in every run. (Compacting once the watch was
// made, as this test first did, tested the case only when the resync had
// not come yet, and passed without it otherwise.) The catch-up must be
// the watch's delta, holding the removal: never one without it (the
// mirror would keep a revoked key), nor the range read instead (then the
// watch was not tested). The mark's witness is written at R, so that no
// count at R is read after the compaction.
func TestChangesSinceCompactedAtTheNextRevision(t *testing.T) {
	addr := startEtcd(t, nil)
	c := etcdClient(t, addr)
	s := openTestStore(t, addr)
	watchAll(s, true)
	ctx := context.Background()
	mustPut(t, c, "/kt/authorized_keys/a.json", "a0")
	mustPut(t, c, "/kt/authorized_keys/w.json", "w0") // the mirror's own last write, at R
	l, err := s.ListRevisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k := markOf(l)
	k.Witness, k.Sum = cli.StoreEntry{Kind: "authorized_keys", Name: "w.json", Revision: k.Top}, sha256.Sum256([]byte("w0"))
	if k.Top != k.Revision {
		t.Fatalf("the witness at %d, R %d: want the witness written at R", k.Top, k.Revision)
	}
	del, err := c.Delete(ctx, "/kt/authorized_keys/a.json") // the revocation, at R+1
	if err != nil {
		t.Fatal(err)
	}
	compacted := false
	s.beforeWatch = func() {
		s.beforeWatch = nil
		if _, err := c.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
			t.Error(err)
			return
		}
		// R is gone before the watch is made: etcd cannot have read the
		// history since R for it from before the compaction.
		_, err := c.Get(ctx, "/kt/authorized_keys/a.json", clientv3.WithRev(k.Revision))
		compacted = errors.Is(err, rpctypes.ErrCompacted)
	}
	d, err := s.ChangesSince(ctx, k)
	if err != nil {
		t.Fatalf("changes since R, compacted at R+1 before the watch: %v", err)
	}
	if !compacted {
		t.Fatal("etcd was not compacted at R+1 before the watch was made: the test tells nothing")
	}
	if s.watched != 1 {
		t.Fatalf("%d deltas by a watch, want the watch's: the range read tells nothing of the watch", s.watched)
	}
	if len(d.Removed) != 1 || d.Removed[0].Name != "a.json" || len(d.Put) != 0 || d.Revision < del.Header.Revision {
		t.Fatalf("compacted at R+1 before the watch: removed %+v, put %+v at revision %d: the revocation at R+1 (%d) was lost", d.Removed, d.Put, d.Revision, del.Header.Revision)
	}
}

// TestChangesSinceWatchMovedToAnotherMember: when clientv3 resumes the
// catch-up's watch on another member (the first one's connection lost),
// its progress notification is not trusted — that member's version was
// never asked, and one before 3.5.8 would answer before sending the
// events since R — and the range is read instead, giving the same delta.
// Two members behind a TCP proxy the test switches from one to the other
// once the watch is made and the first member's version checked; an
// answer from the other member must have come (else the watch ended
// otherwise, and the range read tells nothing of the member's check).
func TestChangesSinceWatchMovedToAnotherMember(t *testing.T) {
	members := startCluster(t, 2)
	p := newSwitchProxy(t, members[0])
	c := etcdClient(t, members[1])
	s := openTestStore(t, p.addr)
	watchAll(s, true)
	ctx := context.Background()
	mark := markThenChange(t, c, s)
	s.beforeProgress = func() {
		s.beforeProgress = nil
		cutWatch(t, p, members[1], c)
	}
	d, err := s.ChangesSince(ctx, mark)
	if err != nil {
		t.Fatal(err)
	}
	if s.beforeProgress != nil {
		t.Fatal("the catch-up did not watch: the test tells nothing")
	}
	if s.watched != 0 {
		t.Fatalf("%d deltas by a watch resumed on another member, want the range read", s.watched)
	}
	if s.movedOff != 1 {
		t.Fatalf("%d watches given up for an answer from another member, want 1: no answer came from the other member (the watch ended otherwise and the range was read), and the test tells nothing", s.movedOff)
	}
	checkChange(t, d)
}

// TestChangesSinceWatchResumedOnADowngradedMember: when the member
// serving the catch-up's watch is restarted as an etcd before 3.5.8 (a
// downgrade) once its version was checked, clientv3 resumes the watch on
// it under the same member ID, and that member may send its progress
// notification before the events since R: the member's version is asked
// again once the notification came, and the range is read instead. The
// restart is the member's connections cut (clientv3 resumes the watch on
// the same member, the only one behind the proxy) and its Status answered
// as 3.5.7 from then on (statusOf: an embedded etcd is one version), once
// the watch is made and the version checked.
func TestChangesSinceWatchResumedOnADowngradedMember(t *testing.T) {
	addr := startEtcd(t, nil)
	p := newSwitchProxy(t, addr)
	c := etcdClient(t, addr)
	s := openTestStore(t, p.addr)
	watchAll(s, true)
	ctx := context.Background()
	mark := markThenChange(t, c, s)
	var downgraded atomic.Bool
	var askedAfter atomic.Int64 // the member's version asked after the restart
	s.statusOf = func(st *etcdserverpb.StatusResponse) {
		if downgraded.Load() {
			st.Version = "3.5.7"
			askedAfter.Add(1)
		}
	}
	s.beforeProgress = func() {
		s.beforeProgress = nil
		downgraded.Store(true)
		cutWatch(t, p, addr, c) // the same member, its connections cut
	}
	d, err := s.ChangesSince(ctx, mark)
	if err != nil {
		t.Fatal(err)
	}
	if s.beforeProgress != nil {
		t.Fatal("the catch-up did not watch: the test tells nothing")
	}
	if s.watched != 0 {
		t.Fatalf("%d deltas by a watch resumed on a member now before 3.5.8, want the range read", s.watched)
	}
	if askedAfter.Load() == 0 {
		t.Fatal("no notification came from the restarted member (its version not asked again): the test tells nothing")
	}
	checkChange(t, d)
}

// cutWatch cuts the catch-up's watch off its member, once made and the
// member's version checked: p's connections are cut, the next ones go to
// the member at to (where clientv3 resumes the watch), and a key outside
// the prefix is written through c. clientv3 resumes a watch from the
// revision after the last it delivered, H+1 when etcd's resync had sent
// the events up to H before the cut, and etcd sends no progress
// notification for a watch that starts past its current revision (mvcc's
// progressIfSync): the resumed watch then never answered, and the tests
// depended on the resync coming after the cut (under -race on a loaded
// machine, 4 runs of 30 had it before, and failed; with a pause before
// the cut, every run). The write brings etcd to H+1, whichever revision
// the watch resumes from; outside the prefix, it leaves the delta
// markThenChange's.
func cutWatch(t *testing.T, p *switchProxy, to string, c *clientv3.Client) {
	t.Helper()
	p.switchTo(to)
	mustPut(t, c, "/elsewhere", "x")
}

// startCluster starts n embedded etcd members of one cluster on loopback
// ports, stopped at the end of the test, and returns their client
// addresses (host:port).
func startCluster(t *testing.T, n int) []string {
	t.Helper()
	cfgs := make([]*embed.Config, n)
	var initial []string
	for i := range cfgs {
		dir := t.TempDir()
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dir, "data")
		c, p := loopbackURL(t), loopbackURL(t)
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{c}, []url.URL{c}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{p}, []url.URL{p}
		cfg.LogLevel = "error"
		cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
		cfg.BcryptCost = testBcryptCost
		initial = append(initial, cfg.Name+"="+p.String())
		cfgs[i] = cfg
	}
	var addrs []string
	for _, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		e, err := embed.StartEtcd(cfg) // ready only once a quorum runs: waited for below
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		defer func() {
			select {
			case <-e.Server.ReadyNotify():
			case <-time.After(60 * time.Second):
				t.Fatal("embedded etcd cluster not ready after 60 s")
			}
		}()
		addrs = append(addrs, cfg.ListenClientUrls[0].Host)
	}
	return addrs
}

// switchProxy forwards the TCP connections made to addr to a member;
// switchTo closes them all and forwards the next ones to another.
type switchProxy struct {
	addr string
	mu   sync.Mutex
	to   string
	open []net.Conn
}

func newSwitchProxy(t *testing.T, to string) *switchProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{addr: l.Addr().String(), to: to}
	t.Cleanup(func() {
		l.Close()
		p.switchTo("")
	})
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			out, err := net.Dial("tcp", p.to)
			if err != nil {
				p.mu.Unlock()
				in.Close()
				continue
			}
			p.open = append(p.open, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *switchProxy) switchTo(to string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.to = to
	for _, c := range p.open {
		c.Close()
	}
	p.open = nil
}

// markThenChange writes a.json and b.json, lists the prefix (the mark it
// returns), then removes a.json and rewrites b.json as "b1": the change
// checkChange expects of a catch-up from the mark.
func markThenChange(t *testing.T, c *clientv3.Client, s *store) cli.StoreMark {
	t.Helper()
	ctx := context.Background()
	mustPut(t, c, "/kt/authorized_keys/a.json", "a0")
	mustPut(t, c, "/kt/authorized_keys/b.json", "b0")
	l, err := s.ListRevisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, "/kt/authorized_keys/a.json"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, c, "/kt/authorized_keys/b.json", "b1")
	return markOf(l)
}

// checkChange checks that d is markThenChange's change.
func checkChange(t *testing.T, d cli.StoreDelta) {
	t.Helper()
	if len(d.Removed) != 1 || d.Removed[0].Name != "a.json" || len(d.Put) != 1 || string(d.Put[0].Value) != "b1" {
		t.Fatalf("delta: removed %+v, put %+v; want a.json removed, b.json=b1", d.Removed, d.Put)
	}
}
