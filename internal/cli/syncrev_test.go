package cli

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

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
