package keydir

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// commentRare is a Config.Rare: the key's comment, nil when it has none.
func commentRare(_ SourceRef, _ string, k *jwk.Key) (any, error) {
	if c := k.Attrs.Comment(); c != "" {
		return c, nil
	}
	return nil, nil
}

// TestRarePartsFollowTheirEntries: an entry's rare part (Config.Rare) is
// its own, whatever entries of its file were skipped before it — a set
// with a bad entry is read entry by entry, and the rare parts of the
// entries after it must not shift onto their neighbours (a name, an
// "expires" or a "from" read from another entry) —, in a directory, in a
// single file, in a feed, and in a file whose content a reload finds
// unchanged. InDir tells the directories and feeds that grant trust (not
// a single file, nor a revocation directory).
func TestRarePartsFollowTheirEntries(t *testing.T) {
	home := t.TempDir()
	dir, single := filepath.Join(home, "keys.d"), filepath.Join(home, "keys.json")
	set := keydirtest.JWK(t,
		key(t, 1),
		keydirtest.WithAttrs(key(t, 2), "comment", "two"),
		keydirtest.WithAttrs(key(t, 3), "comment", "three", "use", "enc"), // skipped: not a signing key
		key(t, 4),
		keydirtest.WithAttrs(key(t, 5), "comment", "five"),
	)
	keydirtest.Write(t, filepath.Join(dir, "set.json"), set)
	keydirtest.Write(t, filepath.Join(dir, "plain.json"), keydirtest.JWK(t, key(t, 6)))
	keydirtest.Write(t, single, set)
	revoked := filepath.Join(home, "revoked.d")
	keydirtest.Write(t, filepath.Join(revoked, "old.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 7), "comment", "seven")))
	feed := newMemFeed("etcd:/fleet/authorized_keys")
	feed.Set(FeedView{Entries: map[string][]byte{"set.json": set}})
	l := New(Config[string]{
		Sources: []Source{{Path: dir, Dir: true}, {Path: single}, {Path: feed.Name(), Dir: true, Feed: feed}, {Path: revoked, Dir: true, Revocation: true}},
		Home:    home, Convert: fpConvert, Rare: commentRare,
	})
	check := func(snap *Snapshot[string]) {
		t.Helper()
		if len(snap.Files()) != 5 {
			t.Fatalf("files %v, problems %v", snap.Files(), snap.Problems)
		}
		for f := range snap.All {
			got := map[string]any{}
			for i := range f.Items() {
				got[f.Items()[i]] = f.RareOf(&f.Items()[i])
			}
			want := map[string]any{key(t, 1).Fingerprint(): nil, key(t, 2).Fingerprint(): "two", key(t, 4).Fingerprint(): nil, key(t, 5).Fingerprint(): "five"}
			switch f.Name() {
			case "plain.json":
				want = map[string]any{key(t, 6).Fingerprint(): nil}
			case "old.json":
				want = map[string]any{key(t, 7).Fingerprint(): "seven"}
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %v, want %v", f.Path(), got, want)
			}
			for fp, r := range want {
				if got[fp] != r {
					t.Errorf("%s: the rare part of %s is %v, want %v", f.Path(), fp, got[fp], r)
				}
			}
			if in := f.Source() == 0 || f.Source() == 2; f.InDir() != in {
				t.Errorf("%s: InDir %v, want %v", f.Path(), f.InDir(), in)
			}
		}
	}
	setFiles := func(snap *Snapshot[string]) (out []*File[string]) {
		for f := range snap.All {
			if f.Name() == "set.json" || f.Source() == 1 {
				out = append(out, f)
			}
		}
		return out
	}
	first := l.Reload()
	check(first)
	// Rewritten with the same content: the Files read before are kept,
	// with their rare parts.
	keydirtest.Write(t, filepath.Join(dir, "set.json"), set)
	keydirtest.Write(t, single, set)
	feed.Set(FeedView{Entries: map[string][]byte{"set.json": slices.Clone(set)}})
	again := l.Reload()
	check(again)
	if !slices.Equal(setFiles(first), setFiles(again)) {
		t.Fatal("a file rewritten with the same content was parsed again: the test does not reach the File kept")
	}
}
