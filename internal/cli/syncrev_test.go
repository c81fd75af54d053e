package cli

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/keytool/keytool/internal/keydir"
)

// revFeeds is a store's live view at a revision, which its State says
// (as etcd's does), and the store's list, which may be ahead of the view
// (its watch behind) or behind it (a member behind the others).
type revFeeds struct {
	Store // the rest is not called
	sets  map[string]*keydir.FeedSet
	rev   int64        // the view's
	list  StoreListing // what List answers
	lists int
}

type revState struct{ rev int64 }

func (r revState) Revision() int64 { return r.rev }

type revFeed struct {
	f    *revFeeds
	kind string
}

func (f *revFeeds) Feed(kind string) keydir.Feed { return revFeed{f, kind} }
func (f *revFeeds) Close() error                 { return nil }
func (f *revFeeds) List(context.Context) (StoreListing, error) {
	f.lists++
	return f.list, nil
}

func (f revFeed) Name() string { return "rev:" + f.kind }
func (f revFeed) View() keydir.FeedView {
	return keydir.FeedView{Set: f.f.sets[f.kind], Group: f.f, State: revState{f.f.rev}}
}
func (f revFeed) Subscribe() (<-chan struct{}, func()) { return nil, func() {} }

// TestSyncWatchNeverMovesBack: sync --watch mirrors the store's list at
// start and at each full pass, and between them the changes its view
// (the watch) says, and a list and the view are at revisions of their
// own: the home is never moved back to an older state of the store than
// one it was mirrored to. Before, a list newer than the view (its watch a
// little behind: alice authorized at 11, removed at 12, the list at 12)
// was followed by the view's change at 11, mirrored: alice authorized
// again in the home until the watch brought 12, which a watch stuck
// behind may not for minutes; and a list older than the view's changes
// mirrored (a member behind the others answering) put back what the home
// had removed. (Found by review, 2026-12-05, second pass.)
func TestSyncWatchNeverMovesBack(t *testing.T) {
	keys := syncKeys(t, 3)
	bob, alice, carol := authorized("bob.json", keys[0]), authorized("alice.json", keys[1]), authorized("carol.json", keys[2])
	log := slog.New(slog.DiscardHandler)
	start := func(t *testing.T) (*syncer, *revFeeds, func(string) bool) {
		s, _, _ := testSyncer(t, t.TempDir())
		f := &revFeeds{sets: map[string]*keydir.FeedSet{}, rev: 10, list: StoreListing{Revision: 10, Identity: "c1", Entries: []StoreEntry{bob}}}
		for _, kind := range StoreKinds {
			f.sets[kind] = keydir.NewFeedSet()
		}
		f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Put("bob.json", bob.Value)
		has := func(name string) bool {
			_, err := os.Stat(filepath.Join(string(s.home), "authorized_keys.d", name))
			return err == nil
		}
		return s, f, has
	}
	t.Run("view behind the list", func(t *testing.T) {
		s, f, has := start(t)
		s.mirrorNow(t.Context(), f, f, log, nil)
		// alice put at 11 and removed at 12: the full pass lists 12, the
		// watch has brought neither yet.
		f.list = StoreListing{Revision: 12, Identity: "c1", Entries: []StoreEntry{bob}}
		gens := s.mirrorNow(t.Context(), f, f, log, nil)
		if gens == nil || has("alice.json") || !has("bob.json") {
			t.Fatalf("the full pass at 12: mirrored %v, alice %v, bob %v", gens, has("alice.json"), has("bob.json"))
		}
		f.rev, f.sets[StoreAuthorized] = 11, f.sets[StoreAuthorized].Put("alice.json", alice.Value)
		gens = s.mirrorNow(t.Context(), f, f, log, gens)
		if has("alice.json") {
			t.Fatal("the view's change at 11, older than the list at 12 the home was mirrored to, was mirrored: alice, removed at 12, authorized again")
		}
		f.rev, f.sets[StoreAuthorized] = 12, f.sets[StoreAuthorized].Delete("alice.json")
		gens = s.mirrorNow(t.Context(), f, f, log, gens)
		f.rev, f.sets[StoreAuthorized] = 13, f.sets[StoreAuthorized].Put("carol.json", carol.Value)
		if s.mirrorNow(t.Context(), f, f, log, gens) == nil || has("alice.json") || !has("carol.json") || f.lists != 2 {
			t.Fatalf("once the view is past the list: alice %v, carol %v (want false, true), lists %d (want 2)", has("alice.json"), has("carol.json"), f.lists)
		}
	})
	t.Run("list behind the view", func(t *testing.T) {
		s, f, has := start(t)
		gens := s.mirrorNow(t.Context(), f, f, log, nil)
		f.rev, f.sets[StoreAuthorized] = 11, f.sets[StoreAuthorized].Put("alice.json", alice.Value)
		gens = s.mirrorNow(t.Context(), f, f, log, gens)
		f.rev, f.sets[StoreAuthorized] = 12, f.sets[StoreAuthorized].Delete("alice.json")
		s.mirrorNow(t.Context(), f, f, log, gens)
		if has("alice.json") {
			t.Fatal("alice's removal at 12 was not mirrored")
		}
		// The full pass, answered by a member still at 11.
		f.list = StoreListing{Revision: 11, Identity: "c1", Entries: []StoreEntry{bob, alice}}
		if gens := s.mirrorNow(t.Context(), f, f, log, nil); gens != nil || has("alice.json") {
			t.Fatalf("a list at 11, older than the view's change at 12 the home was mirrored to: mirrored %v, alice authorized again: %v", gens, has("alice.json"))
		}
		f.list = StoreListing{Revision: 12, Identity: "c1", Entries: []StoreEntry{bob}}
		if gens := s.mirrorNow(t.Context(), f, f, log, nil); gens == nil || has("alice.json") || !has("bob.json") {
			t.Fatal("the list at 12 was not mirrored")
		}
		// Another store (a restore, which etcd makes a new cluster): its
		// revisions start again.
		f.list = StoreListing{Revision: 3, Identity: "c2", Entries: []StoreEntry{carol}}
		if gens := s.mirrorNow(t.Context(), f, f, log, nil); gens == nil || has("bob.json") || !has("carol.json") {
			t.Fatal("the list of another cluster was not mirrored")
		}
		// The same cluster restored from a backup, its identity kept: the
		// view goes back with it (etcd.Source relists another history).
		f.list = StoreListing{Revision: 20, Identity: "c1", Entries: []StoreEntry{bob}}
		s.mirrorNow(t.Context(), f, f, log, nil)
		f.rev, f.list = 5, StoreListing{Revision: 5, Identity: "c1", Entries: []StoreEntry{carol}}
		if gens := s.mirrorNow(t.Context(), f, f, log, nil); gens == nil || has("bob.json") || !has("carol.json") {
			t.Fatal("the store restored to an older revision, its view gone back with it, was not mirrored")
		}
	})
}

// TestSyncNeverMovesBackAcrossSyncs: the revision a sync mirrored the
// home to is recorded in the manifest, under the lock every sync of the
// home takes, so that no sync moves the home back from what another
// mirrored: a one-shot sync from cron whose list is older than what
// sync --watch mirrored (a member behind the others answered it, or its
// list was made before the watch's change and its lock taken after)
// leaves the files as they are, and sync --watch waits for its view to
// catch up with a newer list a one-shot sync mirrored. Before, the
// revision was --watch's memory only: alice's removal at 12, mirrored
// by the watch, was undone by the one-shot's list at 11 until the
// watch's next event. Each syncer here is another process: its own
// memory, the home and its manifest shared. (Found by review,
// 2026-12-05, third pass.)
func TestSyncNeverMovesBackAcrossSyncs(t *testing.T) {
	keys := syncKeys(t, 3)
	bob, alice, carol := authorized("bob.json", keys[0]), authorized("alice.json", keys[1]), authorized("carol.json", keys[2])
	log := slog.New(slog.DiscardHandler)
	w, _, _ := testSyncer(t, t.TempDir()) // sync --watch
	cron, _, _ := testSyncer(t, t.TempDir())
	cron.home = w.home
	has := func(name string) bool {
		_, err := os.Stat(filepath.Join(string(w.home), "authorized_keys.d", name))
		return err == nil
	}
	f := &revFeeds{sets: map[string]*keydir.FeedSet{}, rev: 10, list: StoreListing{Revision: 10, Identity: "c1", Entries: []StoreEntry{bob, alice}}}
	for _, kind := range StoreKinds {
		f.sets[kind] = keydir.NewFeedSet()
	}
	f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Put("bob.json", bob.Value).Put("alice.json", alice.Value)
	gens := w.mirrorNow(t.Context(), f, f, log, nil)
	// alice removed at 12: the watch mirrors it from its view.
	f.rev, f.sets[StoreAuthorized] = 12, f.sets[StoreAuthorized].Delete("alice.json")
	if gens = w.mirrorNow(t.Context(), f, f, log, gens); gens == nil || has("alice.json") {
		t.Fatalf("the watch did not mirror alice's removal at 12")
	}
	// The one-shot sync's list, answered at 11.
	_, err := cron.mirror([]StoreEntry{bob, alice}, syncAt{11, "c1"})
	var behind *syncBehindError
	if !errors.As(err, &behind) || behind.Listed != 11 || behind.Mirrored != 12 {
		t.Fatalf("a list at 11 over a home mirrored to 12: %v, want a *syncBehindError (11, 12)", err)
	}
	if has("alice.json") {
		t.Fatal("a one-shot sync's list at 11 was mirrored over the watch's 12: alice, removed at 12, authorized again")
	}
	// The one-shot sync mirrors 14 (bob rewritten at 13, then removed and
	// carol added at 14) before the watch's view has 13: the view's
	// change at 13 is not mirrored over it.
	if _, err := cron.mirror([]StoreEntry{carol}, syncAt{14, "c1"}); err != nil || !has("carol.json") || has("bob.json") {
		t.Fatalf("the list at 14: %v, carol %v, bob %v", err, has("carol.json"), has("bob.json"))
	}
	f.rev, f.sets[StoreAuthorized] = 13, f.sets[StoreAuthorized].Put("bob.json", keys[2])
	if again := w.mirrorNow(t.Context(), f, f, log, gens); again == nil || has("bob.json") {
		t.Fatal("the watch's view at 13 was mirrored over the one-shot sync's 14: bob, removed at 14, authorized again")
	}
	f.rev, f.sets[StoreAuthorized] = 14, f.sets[StoreAuthorized].Delete("bob.json").Put("carol.json", carol.Value)
	if gens = w.mirrorNow(t.Context(), f, f, log, gens); gens == nil || !has("carol.json") || has("bob.json") || has("alice.json") {
		t.Fatal("the view at 14 was not mirrored")
	}
	// What was recorded is read back by a new process (the base, and the
	// journal's revision lines).
	fresh, _, _ := testSyncer(t, t.TempDir())
	fresh.home = w.home
	if m, err := fresh.readManifest(); err != nil || m.Revision != 14 || m.Cluster != "c1" {
		t.Fatalf("the manifest read again: %v, revision %d of %q; want 14 of c1", err, m.Revision, m.Cluster)
	}
	// Another cluster's list, or --restored, is mirrored as it is.
	fresh.restored = true
	if _, err := fresh.mirror([]StoreEntry{bob, alice}, syncAt{5, "c1"}); err != nil || !has("alice.json") {
		t.Fatalf("--restored: %v, alice %v", err, has("alice.json"))
	}
	if _, err := cron.mirror([]StoreEntry{bob}, syncAt{3, "c2"}); err != nil || has("alice.json") {
		t.Fatalf("another cluster's list: %v, alice %v", err, has("alice.json"))
	}
}

// listsStore is a Store whose List answers each of lists in turn, the
// last one from then on.
type listsStore struct {
	Store // the rest is not called
	mu    sync.Mutex
	lists []StoreListing
}

func (s *listsStore) List(context.Context) (StoreListing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lists[0]
	if len(s.lists) > 1 {
		s.lists = s.lists[1:]
	}
	return l, nil
}
func (s *listsStore) MaxValue() int { return 0 }
func (s *listsStore) Close() error  { return nil }

var (
	listsStores    sync.Map // host → *listsStore
	listsStoreOnce sync.Once
)

// TestSyncOnceListsAgainWhenBehind: a one-shot sync whose list is older
// than what the home was mirrored to lists the store again — most often
// sync --watch mirrored a newer change between its list and its lock —
// and mirrors the newer list (exit 0); only lists that stay older leave
// the home as it is, exit 1, with the command to run after a restore.
func TestSyncOnceListsAgainWhenBehind(t *testing.T) {
	listsStoreOnce.Do(func() {
		RegisterStore(StoreBackend{Schemes: []string{"liststest"}, Flags: func(*pflag.FlagSet) StoreOpener {
			return func(_ context.Context, u *url.URL) (Store, error) {
				st, ok := listsStores.Load(u.Host)
				if !ok {
					return nil, errors.New("liststest: no store " + u.Host)
				}
				return st.(*listsStore), nil
			}
		}})
	})
	wait := syncBehindWait
	syncBehindWait = 10 * time.Millisecond
	t.Cleanup(func() { syncBehindWait = wait })
	keys := syncKeys(t, 2)
	bob, alice := authorized("bob.json", keys[0]), authorized("alice.json", keys[1])
	h := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(h, 0o700); err != nil {
		t.Fatal(err)
	}
	storeURL := "liststest://" + t.Name() + "/p"
	at := func(rev int64, entries ...StoreEntry) StoreListing {
		return StoreListing{Revision: rev, Identity: "c1", Entries: entries}
	}
	has := func(name string) bool {
		_, err := os.Stat(filepath.Join(h, "authorized_keys.d", name))
		return err == nil
	}
	listsStores.Store(t.Name(), &listsStore{lists: []StoreListing{at(12, bob)}})
	if _, stderr, code := runKeytool(t, "", "sync", storeURL, "--to", h); code != 0 {
		t.Fatalf("sync at 12: exit %d\n%s", code, stderr)
	}
	st := &listsStore{lists: []StoreListing{at(11, bob, alice), at(13, bob)}}
	listsStores.Store(t.Name(), st)
	if _, stderr, code := runKeytool(t, "", "sync", storeURL, "--to", h); code != 0 || has("alice.json") || len(st.lists) != 1 {
		t.Fatalf("a list at 11, then one at 13: exit %d, alice %v, lists left %d (want 0, false, 1)\n%s", code, has("alice.json"), len(st.lists), stderr)
	}
	listsStores.Store(t.Name(), &listsStore{lists: []StoreListing{at(11, bob, alice)}})
	_, stderr, code := runKeytool(t, "", "sync", storeURL, "--to", h)
	if code != 1 || has("alice.json") {
		t.Fatalf("lists at 11 only: exit %d, alice %v (want 1, false)\n%s", code, has("alice.json"), stderr)
	}
	for _, want := range []string{"keytool sync: the store answered at revision 11, older than revision 13 that " + h + " was mirrored to", "keytool sync " + storeURL + " --to " + h + " --restored"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
}

// TestSyncSavesTheRevisionBeforeAnyChange: the revision a mirror brings
// the home to is in the manifest on disk before the mirror writes or
// removes any file of the home — an addition, whose claim carries it in
// the same append, as much as a removal or a rewrite, which make no claim
// first — so that a sync killed just after any of its changes leaves a
// manifest that refuses an older list (moveForward). Before, moveForward
// saved it in an append of its own at each mirror, sync --watch's every
// change one fsync more (docs/benchmarks.md, "One change through keytool
// sync --watch").
func TestSyncSavesTheRevisionBeforeAnyChange(t *testing.T) {
	keys := syncKeys(t, 4)
	bob, alice, carol := authorized("bob.json", keys[0]), authorized("alice.json", keys[1]), authorized("carol.json", keys[2])
	revoked := func(val []byte) StoreEntry { return StoreEntry{Kind: StoreRevoked, Name: "r.json", Value: val} }
	s, _, errOut := testSyncer(t, t.TempDir())
	var want syncAt
	var changes []string
	syncChanging = func(rel string) {
		other := &syncer{c: s.c, home: s.home, store: s.store} // another process
		m, err := other.readManifest()
		switch {
		case err != nil:
			t.Errorf("before changing %s at %d: the manifest: %v", rel, want.rev, err)
		case m.Revision != want.rev || m.Cluster != want.cluster:
			t.Errorf("before changing %s at %d of %s: the manifest on disk says %d of %q", rel, want.rev, want.cluster, m.Revision, m.Cluster)
		}
		changes = append(changes, rel)
	}
	t.Cleanup(func() { syncChanging = nil })
	step := func(what string, at syncAt, changed, deleted []StoreEntry, full bool) {
		t.Helper()
		want, changes = at, nil
		var err error
		if full {
			_, err = s.mirror(changed, at)
		} else {
			_, err = s.mirrorChanged(changed, deleted, at)
		}
		if err != nil || len(changes) == 0 {
			t.Fatalf("%s: %v, %d files changed\n%s", what, err, len(changes), errOut)
		}
	}
	step("the first mirror", syncAt{10, "c1"}, []StoreEntry{bob, alice, revoked(keys[3])}, nil, true)
	step("an addition", syncAt{11, "c1"}, []StoreEntry{carol}, nil, false)
	step("a removal", syncAt{12, "c1"}, nil, []StoreEntry{alice}, false)
	step("a rewrite", syncAt{13, "c1"}, []StoreEntry{authorized("bob.json", keys[3])}, nil, false)
	step("a revocation rewritten, held meanwhile", syncAt{14, "c1"}, []StoreEntry{revoked(keys[1])}, nil, false)
	step("a full pass removing one", syncAt{15, "c1"}, []StoreEntry{carol, revoked(keys[1])}, nil, true)
	s.restored = true
	step("--restored", syncAt{3, "c1"}, []StoreEntry{bob}, nil, true)
	if s.restored {
		t.Error("--restored still set once its revision was saved: an older list than it would be mirrored next")
	}
	if _, err := s.mirror([]StoreEntry{alice}, syncAt{2, "c1"}); !errors.As(err, new(*syncBehindError)) {
		t.Fatalf("a list older than the restored revision: %v, want a *syncBehindError", err)
	}
}
