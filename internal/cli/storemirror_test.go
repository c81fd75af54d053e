package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/home"
)

// memStore is a Store in memory, for the mirror's rules.
type memStore struct {
	Store    // the methods the mirror does not call
	entries  []StoreEntry
	revision int64
	identity string
}

func (s *memStore) ListRevisions(context.Context) (StoreListing, error) {
	l := StoreListing{Revision: s.revision, Identity: s.identity}
	for _, e := range s.entries {
		l.Entries = append(l.Entries, entryOf(e))
	}
	return l, nil
}

func (s *memStore) Values(_ context.Context, _ int64, entries []StoreEntry) error {
	for i := range entries {
		for _, e := range s.entries {
			if e.Kind == entries[i].Kind && e.Name == entries[i].Name {
				entries[i].Value = e.Value
			}
		}
	}
	return nil
}

// TestStoreMirrorRebuilds: the mirror is reused as it is while nothing
// but keytool touched it, and rebuilt from the store (its files written
// anew) when the store is another cluster, its revision went back, the
// manifest's mode is not 0600, the mirror's directory holds a file that
// is not its own (a home's single trust file, which the command would
// read), a file's mode changed, or the directory is open to others.
func TestStoreMirrorRebuilds(t *testing.T) {
	h := t.TempDir()
	st := &memStore{identity: "cluster 1", revision: 7, entries: []StoreEntry{
		{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A"), Revision: 5},
		{Kind: StoreRevoked, Name: "r.json", Value: []byte("R"), Revision: 7},
	}}
	var dir string
	// edit runs what inStore does around a command that changes nothing,
	// and says whether the mirror was kept: a rebuild removes everything
	// in it, the admin index's directory too, where a mark is left.
	edit := func() (kept bool) {
		t.Helper()
		m := openMirror(h, "mem://x/p")
		if m == nil {
			t.Fatal("no mirror")
		}
		defer m.close()
		dir = m.dir
		mark := filepath.Join(m.dir, ".index", "mark")
		read, err := m.sync(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		_, err = os.Lstat(mark)
		kept = err == nil
		changes, now, err := changesOf(home.Dir(m.dir), read)
		if err != nil || len(changes) > 0 {
			t.Fatalf("changes %v, %v", changes, err)
		}
		m.settle(now, true)
		if err := os.MkdirAll(filepath.Dir(mark), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mark, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return kept
	}
	if edit() {
		t.Fatal("a new mirror has a mark")
	}
	if !edit() {
		t.Fatal("a mirror nothing touched was rebuilt")
	}
	for _, c := range []struct {
		why    string
		change func()
	}{
		{"another cluster", func() { st.identity = "cluster 2" }},
		{"a revision gone back", func() { st.revision = 6 }},
		{"manifest mode 0644", func() { os.Chmod(filepath.Join(dir, "manifest"), 0o644) }},
		{"a home's trust file in the mirror", func() {
			os.WriteFile(filepath.Join(dir, "authorized_keys.json"), []byte("{}"), 0o644)
		}},
		{"a file chmod-ed", func() { os.Chmod(filepath.Join(dir, "revoked_keys.d", "r.json"), 0o600) }},
		{"the mirror's directory open to others", func() { os.Chmod(dir, 0o755) }},
	} {
		if !edit() {
			t.Fatalf("before %s: the mirror was rebuilt", c.why)
		}
		c.change()
		if edit() {
			t.Errorf("%s: the mirror was not rebuilt", c.why)
		}
		if _, err := os.Lstat(filepath.Join(dir, "authorized_keys.json")); err == nil {
			t.Errorf("%s: a file not the mirror's is still there", c.why)
		}
	}
}

// FuzzParseManifest: the mirror's manifest parser never panics, and
// accepts only lines naming a kind's directory entry.
func FuzzParseManifest(f *testing.F) {
	f.Add(mirrorMagic + "\tetcd cluster 1\t9\n5\t\n")
	f.Add(mirrorMagic + "\tx\t1\n3\t00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\t00\tauthorized_keys/a.json\n")
	f.Fuzz(func(t *testing.T, data string) {
		h := home.Dir("/h")
		_, _, files, err := parseManifest(data, h)
		if err != nil {
			return
		}
		for p, c := range files {
			if filepath.Dir(p) != kindDir(h, c.Kind) || filepath.Base(p) != c.Name || !mirrored(c.StoreEntry) {
				t.Fatalf("manifest names %s (%s/%s)", p, c.Kind, c.Name)
			}
		}
	})
}

// TestStoreMirrorOneAtATime: a mirror another command holds is not
// opened (that command goes on a temporary copy), and is again once
// released.
func TestStoreMirrorOneAtATime(t *testing.T) {
	h := t.TempDir()
	m := openMirror(h, "mem://x/p")
	if m == nil {
		t.Fatal("no mirror")
	}
	if other := openMirror(h, "mem://x/p"); other != nil {
		other.close()
		t.Fatal("a mirror in use was opened again")
	}
	if other := openMirror(h, "mem://y/p"); other == nil {
		t.Fatal("another store's mirror was not opened")
	} else {
		other.close()
	}
	m.close()
	if m = openMirror(h, "mem://x/p"); m == nil {
		t.Fatal("a released mirror was not opened")
	}
	m.close()
	if openMirror(filepath.Join(h, "none"), "mem://x/p") != nil {
		t.Fatal("a mirror was made without a home")
	}
}
