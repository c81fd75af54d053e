package keydir

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// A FeedSet behaves as a map whose old versions never change, and names
// what changed between a version and any later one of its lineage.
func TestFeedSetIsPersistentAndRemembersChanges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	type version struct {
		set   *FeedSet
		model map[string]FeedEntry
	}
	model := map[string]FeedEntry{}
	set := NewFeedSet()
	versions := []version{{set, maps.Clone(model)}}
	for i := range 3000 {
		name := fmt.Sprintf("n%d", r.IntN(400))
		switch r.IntN(4) {
		case 0:
			set = set.Delete(name)
			delete(model, name)
		case 1:
			err := fmt.Errorf("rejected %d", i)
			set = set.Reject(name, err)
			model[name] = FeedEntry{Err: err}
		default:
			b := []byte(fmt.Sprint(i))
			set = set.Put(name, b)
			model[name] = FeedEntry{Data: b}
		}
		versions = append(versions, version{set, maps.Clone(model)})
	}
	for _, v := range versions[len(versions)-50:] {
		checkSet(t, v.set, v.model)
	}
	checkSet(t, versions[0].set, versions[0].model)
	checkSet(t, versions[1000].set, versions[1000].model)
	// Changes since a recent version name every entry that differs. The
	// last version is always within the history; older ones are unless
	// the history was cut since.
	for _, back := range []int{0, 1, 5, 30, 60} {
		old := versions[len(versions)-1-back]
		names, ok := set.ChangedSince(old.set.Gen())
		if !ok && back <= 1 {
			t.Fatalf("%d versions back: no history", back)
		}
		if !ok {
			continue
		}
		for name := range model {
			if e := old.model[name]; !sameEntry(e, model[name]) && !slices.Contains(names, name) {
				t.Errorf("%d versions back: %q changed but not named", back, name)
			}
		}
		for name := range old.model {
			if _, in := model[name]; !in && !slices.Contains(names, name) {
				t.Errorf("%d versions back: %q deleted but not named", back, name)
			}
		}
	}
	// Far behind (the history is cut once longer than the set), another
	// lineage, or nothing read yet: read it whole.
	if _, ok := set.ChangedSince(versions[0].set.Gen()); ok {
		t.Error("history of 3000 changes kept for a set of 400 or fewer")
	}
	if _, ok := set.ChangedSince(NewFeedSet().Gen()); ok {
		t.Error("changes since a set of another lineage")
	}
	if _, ok := set.ChangedSince(0); ok {
		t.Error("changes since nothing")
	}
	if set.Delete("absent") != set {
		t.Error("deleting an absent name made a new set")
	}
}

func sameEntry(a, b FeedEntry) bool { return string(a.Data) == string(b.Data) && a.Err == b.Err }

func checkSet(t *testing.T, s *FeedSet, model map[string]FeedEntry) {
	t.Helper()
	if s.Len() != len(model) {
		t.Fatalf("Len %d, want %d", s.Len(), len(model))
	}
	n := 0
	for name, e := range s.All() {
		n++
		if !sameEntry(e, model[name]) {
			t.Fatalf("All: %q = %+v, want %+v", name, e, model[name])
		}
	}
	if n != len(model) {
		t.Fatalf("All yielded %d, want %d", n, len(model))
	}
	for name, want := range model {
		if e, ok := s.Get(name); !ok || !sameEntry(e, want) {
			t.Fatalf("Get %q = %+v %v, want %+v", name, e, ok, want)
		}
	}
}

// A feed handing FeedSets is re-read entry by entry: one change parses
// one entry, and the snapshot is what a whole read would give; a view
// with Err holds no keys, and the view after it (or after a relist, a set
// of a new lineage) is read whole.
func TestFeedSetChangeParsesOnlyTheChange(t *testing.T) {
	var parsed atomic.Int64
	f := newMemFeed("etcd:/fleet/authorized_keys")
	set := NewFeedSet()
	for i := range 200 {
		set = set.Put(fmt.Sprintf("k%03d", i), keydirtest.JWK(t, key(t, i)))
	}
	f.Set(FeedView{Set: set})
	l := New(Config[string]{Sources: []Source{{Path: f.Name(), Dir: true, Feed: f}}, Convert: func(s SourceRef, p string, k *jwk.Key) (string, error) {
		parsed.Add(1)
		return fpConvert(s, p, k)
	}})
	check := func(what string, set *FeedSet, wantParsed int64) {
		t.Helper()
		parsed.Store(0)
		f.Set(FeedView{Set: set})
		got := l.Reload()
		whole := Load(Config[string]{Sources: []Source{{Path: f.Name(), Dir: true, Feed: f}}, Convert: fpConvert})
		if !equal(fingerprints(got), fingerprints(whole)) || len(got.Problems) != len(whole.Problems) {
			t.Errorf("%s: loaded %d keys, %d problems; a whole read: %d, %d", what, len(fingerprints(got)), len(got.Problems), len(fingerprints(whole)), len(whole.Problems))
		}
		if n := parsed.Load(); n != wantParsed {
			t.Errorf("%s: %d keys parsed, want %d", what, n, wantParsed)
		}
	}
	check("first view", set, 200)
	set = set.Put("k007", keydirtest.JWK(t, key(t, 1000)))
	check("one entry changed", set, 1)
	set = set.Put("new", keydirtest.JWK(t, key(t, 1001))).Delete("k008")
	check("one added, one deleted", set, 1)
	set = set.Put("k009", keydirtest.JWK(t, key(t, 9)))
	check("rewritten unchanged", set, 0)
	set = set.Put("k010", []byte("garbage")).Reject("k011", errors.New("too large"))
	check("bad and rejected", set, 0)
	if snap := l.Snapshot(); problemFor(snap, f.Name()+"/k010") == nil || problemFor(snap, f.Name()+"/k011") == nil {
		t.Errorf("problems %v", snap.Problems)
	}
	f.Set(FeedView{Err: errors.New("stale")})
	if snap := l.Reload(); len(snap.Files()) != 0 || len(snap.Problems) != 1 {
		t.Errorf("stale view: %d files, problems %v", len(snap.Files()), snap.Problems)
	}
	check("after the stale view", set, 198)
	relist := NewFeedSet()
	for name, e := range set.All() {
		if e.Err != nil {
			relist = relist.Reject(name, e.Err)
		} else {
			relist = relist.Put(name, e.Data)
		}
	}
	check("relisted", relist, 0)
}
