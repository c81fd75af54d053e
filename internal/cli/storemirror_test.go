package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/trustfile"
)

// memStore is a Store in memory with its history, for the mirror's rules.
type memStore struct {
	Store     // the methods the mirror does not call
	revision  int64
	identity  string
	at        map[int64][]StoreEntry // the entries at each revision
	compacted int64                  // revisions below are gone
	listings  int                    // ListRevisions calls
	maxValue  int                    // MaxValue: 0, no bound
}

func (s *memStore) MaxValue() int { return s.maxValue }

func newMemStore(entries ...StoreEntry) *memStore {
	s := &memStore{identity: "cluster 1", at: map[int64][]StoreEntry{}}
	for _, e := range entries {
		s.put(e.Kind, e.Name, e.Value)
	}
	return s
}

func (s *memStore) now() []StoreEntry { return s.at[s.revision] }

// put writes an entry (value nil: removes it) at a new revision.
func (s *memStore) put(kind, name string, value []byte) {
	s.write([]StoreChange{{Kind: kind, Name: name, Value: value}})
}

// write makes the changes at one new revision.
func (s *memStore) write(changes []StoreChange) int64 {
	next := slices.Clone(s.now())
	s.revision++
	for _, c := range changes {
		next = slices.DeleteFunc(next, func(e StoreEntry) bool { return e.Kind == c.Kind && e.Name == c.Name })
		if c.Value != nil {
			next = append(next, StoreEntry{Kind: c.Kind, Name: c.Name, Value: c.Value, Revision: s.revision})
		}
	}
	s.at[s.revision] = next
	return s.revision
}

func (s *memStore) ListRevisions(context.Context) (StoreListing, error) {
	s.listings++
	l := StoreListing{Revision: s.revision, Identity: s.identity, Count: int64(len(s.now()))}
	for _, e := range s.now() {
		l.Entries = append(l.Entries, entryOf(e))
	}
	return l, nil
}

func (s *memStore) Values(_ context.Context, rev int64, entries []StoreEntry) error {
	return s.EntriesAt(context.Background(), rev, entries)
}

func (s *memStore) find(rev int64, kind, name string) (StoreEntry, bool) {
	for _, e := range s.at[rev] {
		if e.Kind == kind && e.Name == name {
			return e, true
		}
	}
	return StoreEntry{}, false
}

func (s *memStore) ChangesSince(_ context.Context, k StoreMark) (StoreDelta, error) {
	d := StoreDelta{Revision: s.revision, Identity: s.identity, Count: int64(len(s.now()))}
	rev := k.Revision
	if k.Identity != s.identity || rev > s.revision {
		return d, nil
	}
	if rev < s.compacted {
		return StoreDelta{}, ErrStoreCompacted
	}
	if w := k.Witness; w.Name != "" {
		if e, ok := s.find(rev, w.Kind, w.Name); !ok || e.Revision != k.Top || sha256.Sum256(e.Value) != k.Sum {
			return StoreDelta{}, ErrStoreRewritten
		}
	}
	if rev == s.revision {
		return d, nil // as etcd's: nothing else read when the store did not move
	}
	if int64(len(s.at[rev])) != k.Count {
		return StoreDelta{}, ErrStoreRewritten
	}
	for _, e := range s.now() {
		if e.Revision > k.Top && e.Revision <= rev {
			return StoreDelta{}, ErrStoreRewritten
		}
		if e.Revision > rev {
			d.Put = append(d.Put, e)
		}
	}
	for _, e := range s.at[rev] {
		if _, ok := s.find(s.revision, e.Kind, e.Name); !ok {
			d.Removed = append(d.Removed, entryOf(e))
		}
	}
	return d, nil
}

func (s *memStore) EntriesAt(_ context.Context, rev int64, entries []StoreEntry) error {
	if rev < s.compacted {
		return ErrStoreCompacted
	}
	for i := range entries {
		e, _ := s.find(rev, entries[i].Kind, entries[i].Name)
		entries[i].Value, entries[i].Revision = e.Value, e.Revision
	}
	return nil
}

func (s *memStore) ListAt(_ context.Context, rev int64) ([]StoreEntry, error) {
	if rev < s.compacted {
		return nil, ErrStoreCompacted
	}
	return slices.Clone(s.at[rev]), nil
}

func (s *memStore) Apply(_ context.Context, changes []StoreChange) (int64, error) {
	for _, c := range changes {
		if e, _ := s.find(s.revision, c.Kind, c.Name); e.Revision != c.Revision {
			return 0, &StoreConflictError{Changes: changes}
		}
	}
	return s.write(changes), nil
}

// syncedMirror opens the home h's mirror of st, which the caller closes,
// and brings it to st's entries, as a command does first.
func syncedMirror(t *testing.T, h string, st *memStore) *mirror {
	t.Helper()
	m := openMirror(h, "mem://x/p")
	if m == nil {
		t.Fatal("no mirror")
	}
	if err := m.sync(context.Background(), st); err != nil {
		m.close()
		t.Fatal(err)
	}
	return m
}

// mirrorEdit runs what inStore does around a command (do, on the
// mirror's directory: an entry removed with keydir.RemoveFile, as a
// command removes one; whole refuses any other removal), and returns the
// changes it found and wrote, and
// whether the mirror was kept (not rebuilt: a rebuild removes everything
// in it, the admin index's directory too, where a mark is left).
func mirrorEdit(t *testing.T, h string, st *memStore, do func(dir string), after ...func(dir string)) (changes []StoreChange, kept bool) {
	t.Helper()
	m := syncedMirror(t, h, st)
	defer m.close()
	mark := filepath.Join(m.dir, ".index", "mark")
	_, err := os.Lstat(mark)
	kept = err == nil
	o := m.observe()
	if do != nil {
		do(m.dir)
	}
	changes, err = m.changes(context.Background(), st, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) > 0 {
		rev, err := st.Apply(context.Background(), changes)
		if err != nil {
			t.Fatal(err)
		}
		m.applied(changes, rev)
	}
	for _, f := range after {
		f(m.dir)
	}
	m.settle(true)
	if err := os.MkdirAll(filepath.Dir(mark), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mark, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return changes, kept
}

func mirrorFile(t *testing.T, h, kind, name string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(h, mirrorDir, "*"))
	if len(dirs) != 1 {
		t.Fatalf("mirrors: %v", dirs)
	}
	return filepath.Join(dirs[0], kind+".d", name)
}

// TestStoreMirrorRebuilds: the mirror is reused as it is while nothing
// but keytool touched it, and rebuilt from the store (its files written
// anew) when the store is another cluster, its revision went back, the
// manifest's mode is not 0600, the mirror's directory holds a file that is not its own (a home's
// single trust file, which the command would read), a file was added,
// removed or renamed in a .d directory, a .d directory's mode changed, or
// the mirror's directory is open to others.
func TestStoreMirrorRebuilds(t *testing.T) {
	h := t.TempDir()
	st := newMemStore(
		StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")},
		StoreEntry{Kind: StoreRevoked, Name: "r.json", Value: []byte("R")})
	edit := func() bool {
		_, kept := mirrorEdit(t, h, st, nil)
		return kept
	}
	if edit() {
		t.Fatal("a new mirror has a mark")
	}
	if !edit() {
		t.Fatal("a mirror nothing touched was rebuilt")
	}
	dir := filepath.Dir(filepath.Dir(mirrorFile(t, h, StoreAuthorized, "a.json")))
	auth := filepath.Join(dir, StoreAuthorized+".d")
	for _, c := range []struct {
		why    string
		change func()
	}{
		{"another cluster", func() { st.identity = "cluster 2" }},
		{"a revision gone back", func() { // the same entries, restored one revision back
			back := slices.Clone(st.now())
			for i := range back {
				back[i].Revision = min(back[i].Revision, st.revision-1)
			}
			st.revision--
			st.at[st.revision] = back
		}},
		{"manifest mode 0644", func() { os.Chmod(filepath.Join(dir, "manifest"), 0o644) }},
		{"a home's trust file in the mirror", func() {
			os.WriteFile(filepath.Join(dir, "authorized_keys.json"), []byte("{}"), 0o644)
		}},
		{"a file added", func() { os.WriteFile(filepath.Join(auth, "evil.json"), []byte("E"), 0o644) }},
		{"a file removed", func() { os.Remove(filepath.Join(dir, "revoked_keys.d", "r.json")) }},
		{"a file renamed", func() { os.Rename(filepath.Join(auth, "a.json"), filepath.Join(auth, "b.json")) }},
		{"a directory chmod-ed", func() { os.Chmod(auth, 0o750) }},
		{"the mirror's directory open to others", func() { os.Chmod(dir, 0o755) }},
	} {
		if !edit() {
			t.Fatalf("before %s: the mirror was rebuilt", c.why)
		}
		// A later clock tick than the mirror's last change: a kernel
		// without multigrain timestamps (before 6.13) could give a
		// directory changed within one tick the same stamp (docs/fleet.md).
		time.Sleep(20 * time.Millisecond)
		c.change()
		if edit() {
			t.Errorf("%s: the mirror was not rebuilt", c.why)
		}
		if _, err := os.Lstat(filepath.Join(dir, "authorized_keys.json")); err == nil {
			t.Errorf("%s: a file not the mirror's is still there", c.why)
		}
		if _, err := os.Lstat(filepath.Join(auth, "evil.json")); err == nil {
			t.Errorf("%s: a file not the store's is still there", c.why)
		}
	}
}

// TestStoreMirrorReadsOnlyChanges: a mirror nothing else touched learns
// the store's changes since its revision (an entry put, rewritten,
// removed) without a listing, and a command's own write, written back,
// is not rewritten by the next command; once the store's history since
// is gone, a listing is compared with every file, and the mirror kept.
func TestStoreMirrorReadsOnlyChanges(t *testing.T) {
	h := t.TempDir()
	st := newMemStore(
		StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")},
		StoreEntry{Kind: StoreAuthorized, Name: "b.json", Value: []byte("B")})
	mirrorEdit(t, h, st, nil)
	if st.listings != 1 {
		t.Fatalf("%d listings to build the mirror", st.listings)
	}
	changes, _ := mirrorEdit(t, h, st, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, StoreAuthorized+".d", "n.json"), []byte("N"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if len(changes) != 1 || changes[0].Name != "n.json" || string(changes[0].Value) != "N" || changes[0].Revision != 0 {
		t.Fatalf("changes of a new file: %+v", changes)
	}
	n := mirrorFile(t, h, StoreAuthorized, "n.json")
	before, _ := os.Stat(n)
	st.put(StoreAuthorized, "a.json", []byte("A2"))
	st.put(StoreAuthorized, "b.json", nil)
	st.put(StoreRevoked, "r.json", []byte("R"))
	st.put(StoreAuthorized, "x.json", []byte("X"))
	st.put(StoreAuthorized, "x.json", nil) // made and removed since
	if _, kept := mirrorEdit(t, h, st, nil); !kept || st.listings != 1 {
		t.Fatalf("kept %v, %d listings: the changes were not read alone", kept, st.listings)
	}
	for name, want := range map[string]string{"authorized_keys/a.json": "A2", "authorized_keys/b.json": "", "revoked_keys/r.json": "R", "authorized_keys/x.json": "", "authorized_keys/n.json": "N"} {
		data, err := os.ReadFile(mirrorFile(t, h, filepath.Dir(name), filepath.Base(name)))
		if string(data) != want || (want == "") != errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s in the mirror: %q, %v; want %q", name, data, err, want)
		}
	}
	if after, err := os.Stat(n); err != nil || !os.SameFile(before, after) {
		t.Error("the command's own write was rewritten")
	}
	// A history compacted since the mirror's revision: the store is
	// listed, every file compared, the mirror kept.
	st.put(StoreAuthorized, "a.json", []byte("A3"))
	st.put(StoreAuthorized, "c.json", []byte("C"))
	st.put(StoreRevoked, "r.json", nil)
	st.compacted = st.revision
	if _, kept := mirrorEdit(t, h, st, nil); !kept || st.listings != 2 {
		t.Fatalf("after a compaction: kept %v, %d listings", kept, st.listings)
	}
	for name, want := range map[string]string{"authorized_keys/a.json": "A3", "authorized_keys/c.json": "C", "revoked_keys/r.json": "", "authorized_keys/n.json": "N"} {
		data, err := os.ReadFile(mirrorFile(t, h, filepath.Dir(name), filepath.Base(name)))
		if string(data) != want || (want == "") != errors.Is(err, os.ErrNotExist) {
			t.Errorf("after a compaction, %s in the mirror: %q, %v; want %q", name, data, err, want)
		}
	}

	// A file rewritten with the same bytes, another made and removed:
	// no change.
	changes, _ = mirrorEdit(t, h, st, func(dir string) {
		a := filepath.Join(dir, StoreAuthorized+".d", "a.json")
		os.Remove(a)
		os.WriteFile(a, []byte("A3"), 0o644)
		y := filepath.Join(dir, StoreAuthorized+".d", "y.json")
		os.WriteFile(y, []byte("Y"), 0o644)
		os.Remove(y)
	})
	if len(changes) != 0 {
		t.Fatalf("changes: %+v", changes)
	}
}

// TestStoreMirrorWithoutAWatch: a watch that cannot be made, or that
// overflows, leaves the command to compare every file with the store at
// the mirror's revision: its changes are still found, with the
// revisions read.
func TestStoreMirrorWithoutAWatch(t *testing.T) {
	for _, c := range []struct {
		why   string
		watch func() (keydir.Watcher, error)
	}{
		{"no watch", func() (keydir.Watcher, error) { return nil, errors.New("too many watches") }},
		{"an overflow", func() (keydir.Watcher, error) {
			w, err := fsnotify.NewWatcher()
			if err != nil {
				return nil, err
			}
			go func() { w.Errors <- fsnotify.ErrEventOverflow }()
			return keydir.FSNotify(w), nil
		}},
	} {
		t.Run(c.why, func(t *testing.T) {
			h := t.TempDir()
			st := newMemStore(
				StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")},
				StoreEntry{Kind: StoreAuthorized, Name: "b.json", Value: []byte("B")})
			mirrorEdit(t, h, st, nil)
			aRev := st.revision - 1
			saved := newWatcher
			newWatcher = c.watch
			defer func() { newWatcher = saved }()
			changes, _ := mirrorEdit(t, h, st, func(dir string) {
				os.WriteFile(filepath.Join(dir, StoreAuthorized+".d", "a.json"), []byte("A2"), 0o644)
				keydir.RemoveFile(filepath.Join(dir, StoreAuthorized+".d", "b.json"))
			})
			want := []StoreChange{
				{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A2"), Revision: aRev},
				{Kind: StoreAuthorized, Name: "b.json", Revision: aRev + 1},
			}
			if !slices.EqualFunc(changes, want, func(a, b StoreChange) bool {
				return a.Name == b.Name && string(a.Value) == string(b.Value) && (a.Value == nil) == (b.Value == nil) && a.Revision == b.Revision
			}) {
				t.Fatalf("changes %+v, want %+v", changes, want)
			}
		})
	}
}

// TestStoreMirrorWithoutAWatchWritesOnlyTheCommands: without the watch's
// events, a file rewritten in place by something else between commands
// (which the directories' stamps do not see) differs from the store as
// the command's changes do; it is refused, not written to the store, and
// the next command rebuilds the mirror.
func TestStoreMirrorWithoutAWatchWritesOnlyTheCommands(t *testing.T) {
	h := t.TempDir()
	st := newMemStore(
		StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")},
		StoreEntry{Kind: StoreAuthorized, Name: "b.json", Value: []byte("B")})
	mirrorEdit(t, h, st, nil)
	a := mirrorFile(t, h, StoreAuthorized, "a.json")
	f, err := os.OpenFile(a, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("forged")
	f.Close()
	time.Sleep(20 * time.Millisecond) // a later clock tick than the command's
	saved := newWatcher
	newWatcher = func() (keydir.Watcher, error) { return nil, errors.New("too many watches") }
	defer func() { newWatcher = saved }()
	m := syncedMirror(t, h, st)
	o := m.observe()
	if err := os.WriteFile(mirrorFile(t, h, StoreAuthorized, "b.json"), []byte("B2"), 0o644); err != nil {
		t.Fatal(err)
	}
	changes, err := m.changes(context.Background(), st, o)
	if err == nil {
		t.Fatalf("changes with a file forged before the command: %+v", changes)
	}
	m.settle(false)
	m.close()
	if _, kept := mirrorEdit(t, h, st, nil); kept {
		t.Fatal("the mirror was kept")
	}
	if data, _ := os.ReadFile(a); string(data) != "A" {
		t.Fatalf("a.json after the rebuild: %q", data)
	}
}

// TestStoreMirrorChangedAfterTheCommand: a file made in the mirror by
// something else after the command's changes were read, before the
// directories' stamps are recorded, is seen by the watch: the next command
// rebuilds the mirror.
func TestStoreMirrorChangedAfterTheCommand(t *testing.T) {
	h := t.TempDir()
	st := newMemStore(StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")})
	mirrorEdit(t, h, st, nil)
	mirrorEdit(t, h, st, nil, func(dir string) {
		time.Sleep(20 * time.Millisecond) // a later clock tick, as in TestStoreMirrorRebuilds
		if err := os.WriteFile(filepath.Join(dir, StoreRevoked+".d", "late.json"), []byte("L"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if _, kept := mirrorEdit(t, h, st, nil); kept {
		t.Fatal("a file made after the command's changes were read was recorded as the mirror's")
	}
	if _, err := os.Lstat(mirrorFile(t, h, StoreRevoked, "late.json")); err == nil {
		t.Fatal("the rebuilt mirror holds a file not the store's")
	}
}

// FuzzParseManifest: the mirror's manifest parser never panics, and
// accepts only a stamp for each kind of entry.
func FuzzParseManifest(f *testing.F) {
	f.Add(mirrorMagic + "\tetcd cluster 1\t9\t7\tauthorized_keys\ta.json\t" + strings.Repeat("ab", 32) + "\t3\nauthorized_keys\t00\nrevoked_keys\t01\ntrusted_hosts\t02\n")
	f.Add(mirrorMagic + "\tetcd cluster 1\t9\t0\t-\t-\t-\t0\nauthorized_keys\t00\nrevoked_keys\t01\ntrusted_hosts\t02\n")
	f.Add(mirrorMagic + "\tx\t1\n")
	f.Fuzz(func(t *testing.T, data string) {
		k, stamps, err := parseManifest(data)
		if err != nil {
			return
		}
		if k.Revision < 0 || k.Top < 0 || k.Top > k.Revision || k.Count < 0 || len(stamps) != len(StoreKinds) {
			t.Fatalf("revision %d, top %d, count %d, %d stamps", k.Revision, k.Top, k.Count, len(stamps))
		}
		if w := k.Witness; w.Name != "" && (!slices.Contains(StoreKinds, w.Kind) || w.Revision != k.Top) {
			t.Fatalf("witness %+v", w)
		}
		path := filepath.Join(t.TempDir(), "m")
		if err := writeManifest(path, k, stamps); err != nil {
			t.Fatal(err)
		}
		if k2, stamps2, err := readManifest(path); err != nil || !reflect.DeepEqual(k2, k) || !slices.Equal(stamps, stamps2) {
			t.Fatalf("written again and read: %+v %v %v; was %+v %v", k2, stamps2, err, k, stamps)
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

// TestStoreMirrorOnlyInASafeHome: no mirror is kept in a home that
// breaks the strict-modes rule — one that group or others may write, or
// owned by another user — whoever may write the home could make the
// mirror's directory first, 0700 and theirs (as a group member does
// here, uid 65534), and the files a command reads there, and writes to
// the store as its changes, would be theirs (found by review). The
// command then works on a temporary copy. Before, the mirror's
// directories were checked for their mode alone, and the member's was
// used.
func TestStoreMirrorOnlyInASafeHome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the directory to another user")
	}
	const where = "mem://x/p"
	sum := sha256.Sum256([]byte(where))
	for _, c := range []struct {
		why   string
		mode  fs.FileMode
		owner int
	}{
		{"a home group members may write", 0o770, -1},
		{"a home others may write", 0o757, -1},
		{"a home owned by another user", 0o755, 65534},
	} {
		h := t.TempDir()
		theirs := filepath.Join(h, mirrorDir, fmt.Sprintf("%x", sum[:16]))
		if err := os.MkdirAll(theirs, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{filepath.Dir(theirs), theirs} {
			if err := os.Chown(d, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(h, c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(h, c.owner, -1); err != nil {
			t.Fatal(err)
		}
		if m := openMirror(h, where); m != nil {
			m.close()
			t.Errorf("%s: the mirror was kept in %s", c.why, m.dir)
		}
		if err := os.Chmod(h, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(h, 0, -1); err != nil {
			t.Fatal(err)
		}
		m := openMirror(h, where)
		if m == nil {
			t.Fatalf("%s, fixed: no mirror", c.why)
		}
		m.close()
		// Made again: the member's directory, left from when the home
		// was open, is not the mirror.
		for _, d := range []string{filepath.Dir(theirs), theirs} {
			fi, err := os.Lstat(d)
			if err != nil {
				t.Fatalf("%s, fixed: %v", c.why, err)
			}
			if uid, _ := trustfile.Owner(fi); uid != os.Geteuid() {
				t.Errorf("%s, fixed: the mirror kept in %s, owned by uid %d", c.why, d, uid)
			}
		}
	}
}

// TestStoreMirrorSyncsBeforeTheManifest: the entry files the mirror
// writes unsynced (a rebuild's, a delta's) and the directories naming
// them (a removal's too) are synced before the manifest that vouches for
// them is written — after a power loss, a manifest must not survive an
// empty file whose directory's stamp it records — and a command that
// wrote nothing to the mirror syncs nothing.
func TestStoreMirrorSyncsBeforeTheManifest(t *testing.T) {
	h := t.TempDir()
	st := newMemStore(
		StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")},
		StoreEntry{Kind: StoreRevoked, Name: "r.json", Value: []byte("R")})
	type call struct {
		dirs, files []string
		manifest    int64 // the revision of the manifest when synced; -1: none
	}
	var calls []call
	sync := makeDurable
	makeDurable = func(dirs, files []string) error {
		rev := int64(-1)
		if m, _ := filepath.Glob(filepath.Join(h, mirrorDir, "*", "manifest")); len(m) == 1 {
			if k, _, err := readManifest(m[0]); err == nil {
				rev = k.Revision
			}
		}
		calls = append(calls, call{slices.Clone(dirs), slices.Sorted(slices.Values(files)), rev})
		return sync(dirs, files)
	}
	t.Cleanup(func() { makeDurable = sync })
	manifest := func() int64 {
		t.Helper()
		k, _, err := readManifest(filepath.Join(filepath.Dir(filepath.Dir(mirrorFile(t, h, StoreAuthorized, "a.json"))), "manifest"))
		if err != nil {
			t.Fatal(err)
		}
		return k.Revision
	}

	mirrorEdit(t, h, st, nil) // built
	a, r := mirrorFile(t, h, StoreAuthorized, "a.json"), mirrorFile(t, h, StoreRevoked, "r.json")
	if len(calls) != 1 || !slices.Equal(calls[0].files, []string{a, r}) || len(calls[0].dirs) != 1+len(StoreKinds) || calls[0].manifest != -1 {
		t.Fatalf("building the mirror synced %+v; want a.json and r.json, the mirror's directory and its .d directories, before any manifest", calls)
	}
	mirrorEdit(t, h, st, nil)
	if len(calls) != 1 {
		t.Fatalf("nothing written, yet synced: %+v", calls[1:])
	}

	before := manifest()
	st.put(StoreAuthorized, "n.json", []byte("N"))
	st.put(StoreRevoked, "r.json", nil)
	mirrorEdit(t, h, st, nil)
	n := mirrorFile(t, h, StoreAuthorized, "n.json")
	if len(calls) != 2 {
		t.Fatalf("a delta written: %d syncs, want 1", len(calls)-1)
	}
	c := calls[1]
	if !slices.Equal(c.files, []string{n}) || !slices.Equal(c.dirs, []string{filepath.Dir(n), filepath.Dir(r)}) {
		t.Errorf("a delta synced files %v, directories %v; want %s and the directories of it and of the removed r.json", c.files, c.dirs, n)
	}
	if c.manifest != before || manifest() != st.revision {
		t.Errorf("the manifest was at revision %d when the delta was synced (before: %d), then %d (the store's: %d)", c.manifest, before, manifest(), st.revision)
	}
}

// TestStoreMirrorTellsARewrittenHistory: a store restored from a backup
// to before the mirror's revision, then written past it again (etcd
// restored without --bump-revision: its revisions reused by other
// writes), makes the mirror be rebuilt — whether the restore lost the
// mirror's own last write (its witness is not at the mark's revision) or
// only writes elsewhere (an entry of the new history at or below the
// mark's revision, above every entry the mirror knew) — where the changes
// since its revision alone would leave a file of the lost history and
// miss one of the new.
func TestStoreMirrorTellsARewrittenHistory(t *testing.T) {
	restore := func(st *memStore, to int64) {
		for r := to + 1; r <= st.revision; r++ {
			delete(st.at, r)
		}
		st.revision = to
	}
	has := func(t *testing.T, h, name string) bool {
		_, err := os.Lstat(mirrorFile(t, h, StoreAuthorized, name))
		return err == nil
	}
	t.Run("its own write lost", func(t *testing.T) {
		h := t.TempDir()
		st := newMemStore(StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")})
		mirrorEdit(t, h, st, nil)
		mirrorEdit(t, h, st, func(dir string) {
			os.WriteFile(filepath.Join(dir, StoreAuthorized+".d", "mine.json"), []byte("M"), 0o644)
		})
		restore(st, st.revision-1)
		st.put(StoreAuthorized, "other.json", []byte("O")) // at the revision of mine.json
		st.put(StoreAuthorized, "later.json", []byte("L"))
		if _, kept := mirrorEdit(t, h, st, nil); kept {
			t.Fatal("the mirror was kept")
		}
		if has(t, h, "mine.json") || !has(t, h, "other.json") || !has(t, h, "later.json") {
			t.Fatalf("mine.json %v, other.json %v, later.json %v: want the restored store's", has(t, h, "mine.json"), has(t, h, "other.json"), has(t, h, "later.json"))
		}
	})
	t.Run("writes elsewhere lost", func(t *testing.T) {
		h := t.TempDir()
		st := newMemStore(StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")})
		mirrorEdit(t, h, st, nil)
		restoreTo := st.revision
		st.put(StoreRevoked, "gone.json", nil) // a write outside the entries (etcd: another key of the cluster)
		mirrorEdit(t, h, st, nil)              // the mirror's revision past its entries' last
		restore(st, restoreTo)
		st.put(StoreAuthorized, "other.json", []byte("O")) // at the mirror's revision
		st.put(StoreAuthorized, "later.json", []byte("L"))
		if _, kept := mirrorEdit(t, h, st, nil); kept {
			t.Fatal("the mirror was kept")
		}
		if !has(t, h, "other.json") || !has(t, h, "later.json") {
			t.Fatalf("other.json %v, later.json %v: want the restored store's", has(t, h, "other.json"), has(t, h, "later.json"))
		}
	})
}

// mirrorOfThree is a store of authorized keys a.json and b.json and the
// revoked key mallory.json, edited once through the mirror in home h; its
// revision then (before); and the mirror synced for a command, observed
// from the command's start.
func mirrorOfThree(t *testing.T, h string) (st *memStore, before int64, m *mirror, o *observer) {
	t.Helper()
	st = newMemStore(
		StoreEntry{Kind: StoreAuthorized, Name: "a.json", Value: []byte("A")},
		StoreEntry{Kind: StoreAuthorized, Name: "b.json", Value: []byte("B")},
		StoreEntry{Kind: StoreRevoked, Name: "mallory.json", Value: []byte("M")})
	mirrorEdit(t, h, st, nil)
	before = st.revision
	m = syncedMirror(t, h, st)
	return st, before, m, m.observe()
}

// commandEnd is what inStore does once the command has run on the
// mirror m, observed by o: its changes read and written to st, the
// mirror settled (its manifest kept only if that went well).
func commandEnd(m *mirror, st *memStore, o *observer) ([]StoreChange, error) {
	changes, err := m.changes(context.Background(), st, o)
	if err == nil && len(changes) > 0 {
		var rev int64
		if rev, err = st.Apply(context.Background(), changes); err == nil {
			m.applied(changes, rev)
		}
	}
	m.settle(err == nil)
	return changes, err
}

// TestStoreMirrorRemovedDuringTheCommand: rm -r HOME/.store-mirror while
// a command runs, and a second command starting meanwhile, which makes
// the mirror again, locks its new lock file (the first holds the removed
// one) and has written only some entries yet. The first command, reading
// the files at its end without its watch (its directories were removed),
// found the others removed and wrote their removals to the store — a
// revocation among them (found by review). It refuses, writes nothing,
// and keeps no manifest.
func TestStoreMirrorRemovedDuringTheCommand(t *testing.T) {
	h := t.TempDir()
	st, before, m, o := mirrorOfThree(t, h)
	defer m.close()
	if err := os.RemoveAll(filepath.Join(h, mirrorDir)); err != nil {
		t.Fatal(err)
	}
	second := openMirror(h, "mem://x/p")
	if second == nil {
		t.Fatal("the second command found no mirror to make again")
	}
	defer second.close()
	for _, kind := range StoreKinds {
		if err := os.Mkdir(kindDir(home.Dir(second.dir), kind), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(second.dir, StoreAuthorized+".d", "a.json"), []byte("A"), 0o644); err != nil {
		t.Fatal(err)
	}
	changes, err := m.changes(context.Background(), st, o)
	if !errors.Is(err, errMirrorLost) || len(changes) != 0 {
		t.Fatalf("changes %+v, err %v; want errMirrorLost and none", changes, err)
	}
	m.settle(true)
	if _, err := os.Lstat(second.manifestPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a manifest vouches for the second command's mirror, written by the first: %v", err)
	}
	if st.revision != before {
		t.Errorf("the store moved from revision %d to %d", before, st.revision)
	}
}

// TestStoreMirrorHalfRemovedDuringTheCommand: an rm -r of
// HOME/.store-mirror under way while a command runs, which has removed
// some entry files (or a whole .d directory) but not yet the lock file.
// The command removed one entry itself (a.json); the removals it did not
// make (b.json, the revocation mallory.json) were read as its own and
// written to the store with it. It refuses (*MirrorNotWholeError, naming
// a file it did not remove), writes nothing, and keeps no manifest. A
// directory removed whole was refused already (it cannot be read).
func TestStoreMirrorHalfRemovedDuringTheCommand(t *testing.T) {
	for _, c := range []struct {
		why      string
		rm       func(dir string) error
		notWhole bool // the error is MirrorNotWholeError
	}{
		{"entry files removed", func(dir string) error {
			return errors.Join(os.Remove(filepath.Join(dir, StoreAuthorized+".d", "b.json")),
				os.Remove(filepath.Join(dir, StoreRevoked+".d", "mallory.json")))
		}, true},
		{"a directory emptied and removed", func(dir string) error {
			return os.RemoveAll(filepath.Join(dir, StoreRevoked+".d"))
		}, false},
	} {
		t.Run(c.why, func(t *testing.T) {
			h := t.TempDir()
			st, before, m, o := mirrorOfThree(t, h)
			defer m.close()
			if err := keydir.RemoveFile(filepath.Join(m.dir, StoreAuthorized+".d", "a.json")); err != nil {
				t.Fatal(err)
			}
			if err := c.rm(m.dir); err != nil {
				t.Fatal(err)
			}
			changes, err := commandEnd(m, st, o)
			var notWhole *MirrorNotWholeError
			if err == nil || c.notWhole && (!errors.As(err, &notWhole) || filepath.Base(notWhole.File) == "a.json") {
				t.Fatalf("changes %+v, err %v; want a refusal naming a file the command did not remove", changes, err)
			}
			if st.revision != before {
				t.Errorf("the store moved from revision %d to %d: %+v", before, st.revision, st.now())
			}
			if _, err := os.Lstat(m.manifestPath()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a manifest was kept: %v", err)
			}
		})
	}
}

// TestStoreMirrorNameFreedDuringTheCommand: an rm -r of
// HOME/.store-mirror under way while a command runs has removed b.json
// before the command looked for the name: found free, the command wrote
// its new entry there (keydir.CreateFile, as every new entry is written),
// which was read as a rewrite of the entry b.json the store has — compared
// at its revision, unchanged, and written over it. It refuses
// (*MirrorNotWholeError naming b.json, Created), writes nothing, and
// keeps no manifest, with the watch's events or without (every file
// compared). A name the command freed itself (keydir.RemoveFile, then
// CreateFile), and a name the store does not have, are written.
func TestStoreMirrorNameFreedDuringTheCommand(t *testing.T) {
	b := func(dir string) string { return filepath.Join(dir, StoreAuthorized+".d", "b.json") }
	for _, c := range []struct {
		why     string
		do      func(dir string) error
		refused bool
	}{
		{"a name the rm -r freed", func(dir string) error {
			return errors.Join(os.Remove(b(dir)), keydir.CreateFile(b(dir), []byte("C"), 0o644))
		}, true},
		{"a name the command freed", func(dir string) error {
			return errors.Join(keydir.RemoveFile(b(dir)), keydir.CreateFile(b(dir), []byte("C"), 0o644))
		}, false},
		{"a new name", func(dir string) error {
			return keydir.CreateFile(filepath.Join(dir, StoreAuthorized+".d", "c.json"), []byte("C"), 0o644)
		}, false},
	} {
		for _, watch := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, watched %v", c.why, watch), func(t *testing.T) {
				if !watch {
					saved := newWatcher
					newWatcher = func() (keydir.Watcher, error) { return nil, errors.New("too many watches") }
					defer func() { newWatcher = saved }()
				}
				h := t.TempDir()
				st, before, m, o := mirrorOfThree(t, h)
				defer m.close()
				if err := c.do(m.dir); err != nil {
					t.Fatal(err)
				}
				changes, err := commandEnd(m, st, o)
				_, manifest := os.Lstat(m.manifestPath())
				if !c.refused {
					if err != nil || len(changes) != 1 || st.revision != before+1 || manifest != nil {
						t.Fatalf("changes %+v, err %v, the store at %d (was %d), the manifest %v; want the change written and the manifest kept", changes, err, st.revision, before, manifest)
					}
					return
				}
				var notWhole *MirrorNotWholeError
				if !errors.As(err, &notWhole) || notWhole.File != b(m.dir) || notWhole.Name != "b.json" || !notWhole.Created {
					t.Fatalf("changes %+v, err %v; want a refusal naming b.json, created", changes, err)
				}
				if st.revision != before {
					t.Errorf("the store moved from revision %d to %d: %+v", before, st.revision, st.now())
				}
				if !errors.Is(manifest, fs.ErrNotExist) {
					t.Errorf("a manifest was kept: %v", manifest)
				}
			})
		}
	}
}

// TestStoreMirrorHoldsWhatTheReadersTake: the store's copy an edit runs
// on holds each entry as sync mirrors it (entryFile): an authorization
// over the store's bound has no file, a revocation over it or with a name
// that is no file name is the stand-in that refuses every key, one whose
// name the home's loader skips is held under a name of sync's; a change
// that brings an entry back under the bound gives it its own file again,
// and an edit of a stand-in is refused. (Found by review: the copy kept
// oversized entries as they were and dropped the others, so that
// authorize --list said ok for a key the store's readers ignore, or
// missed a revocation that refuses every key there.)
func TestStoreMirrorHoldsWhatTheReadersTake(t *testing.T) {
	dir := t.TempDir()
	alice, bob := filepath.Join(dir, "alice.json"), filepath.Join(dir, "bob.json")
	writePublicKey(t, alice, nil)
	writePublicKey(t, bob, nil)
	const bound = 4096
	big := func(path string) []byte { return append(readFile(t, path), bytes.Repeat([]byte(" "), bound)...) }
	st := newMemStore(
		StoreEntry{Kind: StoreAuthorized, Name: "alice.json", Value: readFile(t, alice)},
		StoreEntry{Kind: StoreAuthorized, Name: "bob.json", Value: big(bob)},
		StoreEntry{Kind: StoreRevoked, Name: "carol.json.tmp", Value: readFile(t, bob)},
	)
	st.maxValue = bound
	h := filepath.Join(dir, "home")
	if err := os.Mkdir(h, 0o700); err != nil {
		t.Fatal(err)
	}
	// The files of a kind, and apart the notes of the entries not held
	// (noteOf), each read back as its entry's name.
	dirOf := func(m *mirror, kind string) (files, noted []string) {
		des, err := os.ReadDir(kindDir(home.Dir(m.dir), kind))
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			if !strings.HasPrefix(de.Name(), unheldPrefix) {
				files = append(files, de.Name())
				continue
			}
			n, ok := readNote(filepath.Join(kindDir(home.Dir(m.dir), kind), de.Name()))
			if !ok || noteRel(kind, n.Name) != kind+".d/"+de.Name() {
				t.Fatalf("%s: not the note of the entry it names (%+v)", de.Name(), n)
			}
			noted = append(noted, n.Name)
		}
		slices.Sort(noted)
		return files, noted
	}
	list := func(m *mirror, kind string) []string { files, _ := dirOf(m, kind); return files }
	notes := func(m *mirror, kind string) []string { _, noted := dirOf(m, kind); return noted }
	m := syncedMirror(t, h, st)
	if got := list(m, StoreAuthorized); !slices.Equal(got, []string{"alice.json"}) {
		t.Errorf("authorized_keys.d holds %v, want alice.json alone (bob's is over the bound)", got)
	}
	if got := notes(m, StoreAuthorized); !slices.Equal(got, []string{"bob.json"}) {
		t.Errorf("authorized_keys.d notes %v, want bob.json's (not held: over the bound)", got)
	}
	alt := filepath.Base(revocationAlt(StoreRevoked + ".d/carol.json.tmp"))
	if got := list(m, StoreRevoked); !slices.Equal(got, []string{alt}) {
		t.Errorf("revoked_keys.d holds %v, want %s (carol.json.tmp's value)", got, alt)
	}
	m.settle(true)
	m.close()

	// A revocation over the bound arrives (a delta), and one whose name
	// is no file name: the stand-ins that refuse every key.
	st.put(StoreRevoked, "dave.json", big(alice))
	st.put(StoreRevoked, "../eve.json", readFile(t, alice))
	m = syncedMirror(t, h, st)
	stood := func(name string) string { return filepath.Base(unmirrorableRevocation(name, "").rel) }
	want := []string{alt, stood("dave.json"), stood("../eve.json")}
	slices.Sort(want)
	if got := list(m, StoreRevoked); !slices.Equal(got, want) {
		t.Errorf("revoked_keys.d holds %v, want %v", got, want)
	}
	if got := notes(m, StoreRevoked); !slices.Equal(got, []string{"../eve.json", "dave.json"}) {
		t.Errorf("revoked_keys.d notes %v, want ../eve.json's and dave.json's", got)
	}
	stdout, _, _ := runKeytool(t, "", "-H", m.dir, "authorize", "--list")
	if regexp.MustCompile(`(?m)^alice +SHA256:\S+ +ok`).MatchString(stdout) || strings.Contains(stdout, "bob") {
		t.Errorf("want alice refused (a revocation refuses every key) and bob absent:\n%s", stdout)
	}
	m.settle(true)
	m.close()

	// dave's revocation made small, bob's authorization too: own files.
	st.put(StoreRevoked, "dave.json", readFile(t, alice))
	st.put(StoreAuthorized, "bob.json", readFile(t, bob))
	st.put(StoreRevoked, "../eve.json", nil)
	m = syncedMirror(t, h, st)
	if got := list(m, StoreRevoked); !slices.Equal(got, []string{"dave.json", alt}) {
		t.Errorf("revoked_keys.d holds %v, want dave.json and %s", got, alt)
	}
	if got := list(m, StoreAuthorized); !slices.Equal(got, []string{"alice.json", "bob.json"}) {
		t.Errorf("authorized_keys.d holds %v, want alice.json and bob.json", got)
	}
	for _, kind := range StoreKinds {
		if got := notes(m, kind); len(got) > 0 {
			t.Errorf("%s.d notes %v, want none: every entry held (or gone) now", kind, got)
		}
	}
	m.settle(true)
	m.close()

	// An edit of a file held under sync's name is no entry to write.
	m = syncedMirror(t, h, st)
	defer m.close()
	o := m.observe()
	if err := atomicfile.Write(filepath.Join(kindDir(home.Dir(m.dir), StoreRevoked), alt), []byte("{}"), 0o644); err != nil { // as a command writes
		t.Fatal(err)
	}
	changes, err := m.changes(context.Background(), st, o)
	if err == nil {
		err = standInsUnchanged(changes)
	}
	var se *StandInChangedError
	if !errors.As(err, &se) || se.Name != alt {
		t.Fatalf("edit of %s: %v, want a StandInChangedError", alt, err)
	}
}

// TestStoreMirrorEntryNotHeldIsNotWrittenOver: an entry the store has but
// its copy does not hold (an authorization over the bound) is not seen
// by the command, which may write a new entry of that name: refused,
// naming the entry and why, with and without the watch. (Before, the
// mirror refused it as a removal of the mirror under way, or the store
// as a conflict.)
func TestStoreMirrorEntryNotHeldIsNotWrittenOver(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run(fmt.Sprint("watch=", watch), func(t *testing.T) {
			if !watch {
				saved := newWatcher
				newWatcher = func() (keydir.Watcher, error) { return nil, errors.New("too many watches") }
				defer func() { newWatcher = saved }()
			}
			st := newMemStore(StoreEntry{Kind: StoreAuthorized, Name: "bob.json", Value: bytes.Repeat([]byte(" "), 100)})
			st.maxValue = 64
			h := t.TempDir()
			m := syncedMirror(t, h, st)
			defer m.close()
			o := m.observe()
			if err := keydir.CreateFile(filepath.Join(kindDir(home.Dir(m.dir), StoreAuthorized), "bob.json"), []byte("{}"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := m.changes(context.Background(), st, o)
			var he *HiddenEntryError
			if !errors.As(err, &he) || he.Name != "bob.json" || !strings.Contains(err.Error(), "100 bytes, more than the 64") {
				t.Fatalf("changes: %v, want a HiddenEntryError for bob.json", err)
			}
		})
	}
}
