package authkeys

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/jwk"
)

// A name is one client's identity: Add refuses a name that an entry of
// another file already holds with another key — a "name" member in a
// file of another name, a member of a JWK Set in the single file — naming
// that file, in either mode, and writes nothing (found by review: only
// NAME.json was checked, so a second key could take a client's name).
func TestAddRefusesANameHeldElsewhere(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	bob := filepath.Join(opts.Dirs[0], "bob.json")
	keydirtest.Write(t, bob, keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 1), "name", "alice")))
	set := opts.Files[0]
	keydirtest.Write(t, set, keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "name", "carol"), keydirtest.WithAttrs(key(t, 3), "name", "dave")))
	s := Load(opts)
	for _, c := range []struct {
		name string
		file string
		held int
	}{{"alice", bob, 1}, {"dave", set, 3}} {
		for _, mode := range []AddMode{AddNew, Replace} {
			var ne *NameExistsError
			_, err := s.Add(key(t, 9), c.name, mode)
			if !errors.As(err, &ne) || ne.File != c.file || ne.Fingerprint != key(t, c.held).Fingerprint() {
				t.Fatalf("Add(%q, mode %d): got %v, want the name taken in %s", c.name, mode, err, c.file)
			}
		}
		if _, err := os.Lstat(filepath.Join(opts.Dirs[0], c.name+".json")); err == nil {
			t.Fatalf("%s.json was written", c.name)
		}
	}
	if _, err := s.LookupKey(key(t, 9), netip.Addr{}); err == nil {
		t.Fatal("the refused key was authorized")
	}
	// The client's next key beside its entry (rotation) shares the name
	// by design.
	if _, err := s.Add(key(t, 10), "alice", AddBeside); err != nil {
		t.Fatalf("AddBeside: %v", err)
	}
	// A name nobody holds is free.
	if _, err := s.Add(key(t, 9), "erin", AddNew); err != nil {
		t.Fatal(err)
	}
}

// An admin command's narrowed store (LoadFor) finds the file holding the
// name through the admin index's name term, without reading the rest of
// the store — also when the command did not look the name up (Extend).
func TestLoadForAddFindsTheNameThroughTheIndex(t *testing.T) {
	opts := fillHome(t, 50)
	bob := filepath.Join(opts.Dirs[0], "bob.json")
	keydirtest.Write(t, bob, keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 100), "name", "alice")))
	_, finish := LoadFor(opts, Lookups{}) // makes the index
	finish()
	for _, l := range []Lookups{
		{Keys: [][32]byte{key(t, 101).SPKIHash()}, Names: []string{"alice"}},
		{Keys: [][32]byte{key(t, 101).SPKIHash()}},
	} {
		s, finish := LoadFor(opts, l)
		var ne *NameExistsError
		if _, err := s.Add(key(t, 101), "alice", AddNew); !errors.As(err, &ne) || ne.File != bob {
			t.Fatalf("lookups %v: got %v, want the name taken in %s", l, err, bob)
		}
		if n := loadedFiles(s); n != 1 {
			t.Fatalf("lookups %v: read %d files, want 1 (bob.json, by its name)", l, n)
		}
		finish()
	}
}

// sharedNamesOf is SharedNames as "name: file, file; …" (base names).
func sharedNamesOf(s *Store) string {
	var parts []string
	for _, sh := range s.SharedNames() {
		var files []string
		for _, e := range sh.Entries {
			files = append(files, filepath.Base(e.File))
		}
		parts = append(parts, sh.Name+": "+strings.Join(files, ", "))
	}
	return strings.Join(parts, "; ")
}

// Entries of several keys sharing a name are reported — SharedNames, in
// name order, and a warning in the store's log when the name becomes
// shared — and every one of them stays authorized: refusing would let
// whoever adds a file lock another client out. A client's rotation files
// (NAME+KEYID.json, written by AcceptRotation) share its name by design
// and are not reported beside NAME.json; beside another file's "name"
// member they are. A reload that changes a few files keeps the report
// right (the counts follow the changed files), and it matches a fresh
// load's.
func TestSharedNamesReported(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	var log testlog.Buffer
	opts.Logger = log.Logger()
	dir := opts.Dirs[0]
	named := func(n int, name string) []byte {
		return keydirtest.JWK(t, keydirtest.WithAttrs(key(t, n), "name", name))
	}
	keydirtest.Write(t, filepath.Join(dir, "alice.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(dir, "zz-mallory.json"), named(2, "alice"))
	keydirtest.Write(t, filepath.Join(dir, "carol.json"), keydirtest.JWK(t, key(t, 3)))
	keydirtest.Write(t, filepath.Join(dir, besideName("carol", key(t, 4).SPKIHash())+".json"), named(4, "carol"))
	keydirtest.Write(t, opts.Files[0], keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 5), "name", "bob"), keydirtest.WithAttrs(key(t, 6), "name", "bob")))
	s := Load(opts)
	want := "alice: alice.json, zz-mallory.json; bob: authorized_keys.json, authorized_keys.json"
	if got := sharedNamesOf(s); got != want {
		t.Fatalf("shared names %q, want %q", got, want)
	}
	for n := 1; n <= 6; n++ {
		if _, err := s.LookupKey(key(t, n), netip.Addr{}); err != nil {
			t.Fatalf("key %d refused: %v", n, err)
		}
	}
	if got := log.String(); strings.Count(got, "share a name") != 2 || !strings.Contains(got, "name=alice entries=\""+key(t, 1).Fingerprint()+" ("+filepath.Join(dir, "alice.json")+"), "+key(t, 2).Fingerprint()) {
		t.Fatalf("log:\n%s", got)
	}

	// A few files change: another key named carol, alice's mallory gone,
	// and carol's first entry removed (its rotation file stays) — the
	// reload edits the index, and the counts follow.
	updates := s.updates
	keydirtest.Write(t, filepath.Join(dir, "dave.json"), named(7, "carol"))
	if err := os.Remove(filepath.Join(dir, "zz-mallory.json")); err != nil {
		t.Fatal(err)
	}
	s.Loader().Reload()
	want = "bob: authorized_keys.json, authorized_keys.json; carol: " + besideName("carol", key(t, 4).SPKIHash()) + ".json, carol.json, dave.json"
	if got := sharedNamesOf(s); got != want {
		t.Fatalf("after a reload: shared names %q, want %q", got, want)
	}
	if s.updates == updates {
		t.Fatal("the reload rebuilt the index: the incremental counts were not exercised")
	}
	if !strings.Contains(log.String(), "now held by one client\" name=alice") {
		t.Fatalf("log:\n%s", log.String())
	}
	if err := os.Remove(filepath.Join(dir, "carol.json")); err != nil {
		t.Fatal(err)
	}
	s.Loader().Reload()
	if got, fresh := sharedNamesOf(s), sharedNamesOf(Load(HomeOptions(home))); got != fresh || !strings.Contains(got, "carol: "+besideName("carol", key(t, 4).SPKIHash())+".json, dave.json") {
		t.Fatalf("after the reloads: %q, a fresh load: %q", got, fresh)
	}
}

// Only entries in effect count towards a name: a file whose key an
// earlier file holds (the first file holding a key wins) gives its name to
// no one, so a name it shares with another client is not shared — not by
// the first load's count (a rebuild), nor when the two come by a reload.
func TestSharedNamesCountOnlyEntriesInEffect(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	var log testlog.Buffer
	opts.Logger = log.Logger()
	dir := opts.Dirs[0]
	keydirtest.Write(t, filepath.Join(dir, "alice.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(dir, "bob.json"), keydirtest.JWK(t, key(t, 1))) // alice's key: not in effect
	keydirtest.Write(t, opts.Files[0], keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "name", "bob")))
	s := Load(opts)
	// The store's counts, which SharedNames and the log read only the
	// names of: a name counted shared that is not costs a read of every
	// entry at each of them.
	if got, shared := sharedNamesOf(s), s.snap.Load().shared; got != "" || len(shared) > 0 {
		t.Fatalf("shared names %q, counted %v, want none", got, shared)
	}
	keydirtest.Write(t, filepath.Join(dir, "carol.json"), keydirtest.JWK(t, key(t, 3)))
	keydirtest.Write(t, filepath.Join(dir, "dave.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 3), "name", "bob")))
	s.Loader().Reload()
	if got, shared := sharedNamesOf(s), s.snap.Load().shared; got != "" || len(shared) > 0 {
		t.Fatalf("after a reload: shared names %q, counted %v, want none", got, shared)
	}
	if strings.Contains(log.String(), "share a name") {
		t.Fatalf("log:\n%s", log.String())
	}
}

// The name check of an admin command's Add reads no more than the files
// the admin index names, round after round of authorize and its undo
// (as BenchmarkAdmin runs them): it never widens a current index.
func TestLoadForAddNameCheckStaysNarrow(t *testing.T) {
	opts := fillHome(t, 50)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	k := key(t, 100)
	for round := range 5 {
		s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}, Names: []string{"new"}})
		if _, err := s.Add(k, "new", AddNew); err != nil {
			t.Fatal(err)
		}
		if n := loadedFiles(s); n > 1 {
			t.Fatalf("round %d: authorize read %d files, want at most 1", round, n)
		}
		finish()
		s, finish = LoadFor(opts, Lookups{Names: []string{"new"}})
		if _, err := s.Remove("new"); err != nil {
			t.Fatal(err)
		}
		finish()
	}
}

// In a store big enough that a rebuild counts the names on another core
// while it indexes the keys (parallelCount), the count still holds only
// the entries in effect: made before the insertions have found the
// shadowed ones, it is made again when there are any.
func TestSharedNamesCountedBesideTheIndex(t *testing.T) {
	fleet := make([]*jwk.Key, parallelCount)
	for i := range fleet {
		fleet[i] = keydirtest.WithAttrs(key(t, 1000+i), "name", fmt.Sprintf("member-%d", i))
	}
	for _, shadow := range []bool{false, true} {
		t.Run(fmt.Sprintf("shadowed=%v", shadow), func(t *testing.T) {
			opts := HomeOptions(t.TempDir())
			dir := opts.Dirs[0]
			keydirtest.Write(t, filepath.Join(dir, "fleet.json"), keydirtest.JWK(t, fleet...))
			keydirtest.Write(t, filepath.Join(dir, "alice.json"), keydirtest.JWK(t, key(t, 1)))
			keydirtest.Write(t, filepath.Join(dir, "carol.json"), keydirtest.JWK(t, key(t, 3)))
			keydirtest.Write(t, filepath.Join(dir, "other.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 4), "name", "carol")))
			keydirtest.Write(t, filepath.Join(dir, "robert.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "name", "bob")))
			if shadow { // alice's key: not in effect, so bob is robert's alone
				keydirtest.Write(t, filepath.Join(dir, "bob.json"), keydirtest.JWK(t, key(t, 1)))
			}
			s := Load(opts)
			if n := s.Status().Keys; n < parallelCount {
				t.Fatalf("%d keys loaded: below parallelCount, the test does not reach the parallel count", n)
			}
			if got, want := sharedNamesOf(s), "carol: carol.json, other.json"; got != want {
				t.Fatalf("shared names %.200q, want %q", got, want)
			}
			if shared := s.snap.Load().shared; len(shared) != 1 {
				t.Fatalf("%d names counted shared, want 1 (carol)", len(shared))
			}
		})
	}
}

// A name that is not shown as it is — "ad\u200bmin", displayed as
// "admin"; a file named with a bidi override — is refused where it is
// given (Add: *keydir.NameCharError, nothing written), but an entry of an
// earlier version or written by hand that holds one keeps its key
// authorized, is listed by UnprintableNames with the character escaped
// in the message, and its client's next key is still accepted beside it
// (docs/design.md, "Names").
func TestUnprintableNames(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	dir := opts.Dirs[0]
	keydirtest.Write(t, filepath.Join(dir, "admin.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(dir, "mallory.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "name", "ad\u200bmin")))
	keydirtest.Write(t, filepath.Join(dir, "ro\u202eot.json"), keydirtest.JWK(t, key(t, 3)))
	s := Load(opts)
	for n := 1; n <= 3; n++ {
		if _, err := s.LookupKey(key(t, n), netip.Addr{}); err != nil {
			t.Fatalf("key %d refused: %v", n, err)
		}
	}
	got := s.UnprintableNames()
	if len(got) != 2 || got[0].Entry.Name != "ad\u200bmin" || got[1].Entry.Name != "ro\u202eot" {
		t.Fatalf("UnprintableNames = %v, want mallory.json's and ro\\u202eot.json's", got)
	}
	for i, want := range []string{
		`authkeys: the name "ad\u200bmin" of key ` + key(t, 2).Fingerprint() + ` (` + filepath.Join(dir, "mallory.json") + `) holds U+200B at character 3, an invisible format character`,
		`authkeys: the name "ro\u202eot" of key ` + key(t, 3).Fingerprint() + ` ("` + filepath.Join(dir, `ro\u202eot.json`) + `") holds U+202E at character 3, a bidirectional control`,
	} {
		if msg := got[i].Error(); !strings.HasPrefix(msg, want) || strings.ContainsAny(msg, "\u200b\u202e") {
			t.Errorf("message %q, want it to begin %q, escaped", msg, want)
		}
	}

	var ce *keydir.NameCharError
	if _, err := s.Add(key(t, 4), "ad\u200bmin", AddNew); !errors.As(err, &ce) || ce.Char != 0x200b || ce.Pos != 3 {
		t.Fatalf("Add under a name holding U+200B: %v", err)
	}
	if _, err := s.Add(key(t, 4), "\u2066admin\u2069", Replace); !errors.As(err, &ce) || ce.Char != 0x2066 {
		t.Fatalf("Add under a name in bidi isolates: %v", err)
	}
	if _, err := s.LookupKey(key(t, 4), netip.Addr{}); err == nil {
		t.Fatal("a refused Add authorized the key")
	}
	e, err := s.Add(key(t, 5), "ad\u200bmin", AddBeside)
	if err != nil || e.Name != "ad\u200bmin" {
		t.Fatalf("the next key of the entry named ad\\u200bmin: %v, %v", e, err)
	}
	if len(s.UnprintableNames()) != 3 {
		t.Fatalf("after the next key: %v", s.UnprintableNames())
	}
}

// A name mixing scripts — "\u0430dmin", a Cyrillic а before Latin
// letters, which reads "admin" and is not the string "admin" the
// name-taken check compares — is refused where it is given, given as a
// key's own "name" member too (*keydir.NameScriptError), and nothing is
// written; an entry of an earlier version or written by hand holding one
// keeps its key authorized, and a client's next key is still accepted
// beside it (docs/design.md, "Names").
func TestMixedScriptNames(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	dir := opts.Dirs[0]
	keydirtest.Write(t, filepath.Join(dir, "admin.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(dir, "old.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "name", "p\u0430ypal")))
	s := Load(opts)
	for n := 1; n <= 2; n++ {
		if _, err := s.LookupKey(key(t, n), netip.Addr{}); err != nil {
			t.Fatalf("key %d refused: %v", n, err)
		}
	}
	before, _ := os.ReadDir(dir)

	var se *keydir.NameScriptError
	for _, mode := range []AddMode{AddNew, Replace} {
		if _, err := s.Add(key(t, 3), "\u0430dmin", mode); !errors.As(err, &se) || se.Char != 0x430 || se.Pos != 1 {
			t.Fatalf("Add under \\u0430dmin (mode %v): %v", mode, err)
		}
	}
	if _, err := s.Add(keydirtest.WithAttrs(key(t, 3), "name", "\u0391lice"), "\u0391lice", AddNew); !errors.As(err, &se) || se.Char != 0x391 {
		t.Fatalf("Add under a key's own name \\u0391lice: %v", err)
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Fatalf("a refused Add wrote files: %v, before %v", after, before)
	}
	if _, err := s.LookupKey(key(t, 3), netip.Addr{}); err == nil {
		t.Fatal("a refused Add authorized the key")
	}
	// One script, or Latin with Han: accepted.
	for i, name := range []string{"\u0430\u0434\u043c\u0438\u043d", "東京-tokyo"} {
		if _, err := s.Add(key(t, 4+i), name, AddNew); err != nil {
			t.Fatalf("Add under %q: %v", name, err)
		}
	}
	e, err := s.Add(key(t, 6), "p\u0430ypal", AddBeside)
	if err != nil || e.Name != "p\u0430ypal" {
		t.Fatalf("the next key of the entry named p\\u0430ypal: %v, %v", e, err)
	}
}

// An entry whose name is not shown as it is is logged when it appears —
// on the first load, and when a reload brings it, from the files that
// changed alone — once, not again at each reload while it stays; it
// stays authorized. The store's count of such names is what
// UnprintableNames trusts to read no entry when there is none, so it must
// follow every reload and match a fresh load's walk of the entries.
func TestUnprintableNamesLogged(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	var log testlog.Buffer
	opts.Logger = log.Logger()
	dir := opts.Dirs[0]
	const msg = "is not shown as it is"
	keydirtest.Write(t, filepath.Join(dir, "admin.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(dir, "mallory.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "name", "ad\u200bmin")))
	s := Load(opts)
	got := log.String()
	if strings.Count(got, msg) != 1 || !strings.Contains(got, `name="ad\u200bmin"`) || !strings.Contains(got, "fingerprint="+key(t, 2).Fingerprint()) ||
		!strings.Contains(got, `character="U+200B at character 3, an invisible format character"`) || strings.Contains(got, "\u200b") {
		t.Fatalf("first load's log:\n%s", got)
	}
	if _, err := s.LookupKey(key(t, 2), netip.Addr{}); err != nil {
		t.Fatalf("the key of the entry named ad\\u200bmin refused: %v", err)
	}

	// Another file: the reload edits the index, and logs nothing again.
	updates := s.updates
	keydirtest.Write(t, filepath.Join(dir, "carol.json"), keydirtest.JWK(t, key(t, 3)))
	s.Loader().Reload()
	if s.updates == updates {
		t.Fatal("the reload rebuilt the index: the incremental counts were not exercised")
	}
	if n := strings.Count(log.String(), msg); n != 1 {
		t.Fatalf("logged %d times after an unrelated reload:\n%s", n, log.String())
	}

	// The entry goes: none is left, and UnprintableNames reads none.
	if err := os.Remove(filepath.Join(dir, "mallory.json")); err != nil {
		t.Fatal(err)
	}
	s.Loader().Reload()
	if u, counted := s.UnprintableNames(), s.snap.Load().unprintable; len(u) != 0 || len(counted) != 0 {
		t.Fatalf("after the removal: %v, counted %v", u, counted)
	}

	// It comes back by a reload, with a second one of another name in a
	// JWK Set: each is logged, the first again since it had gone.
	keydirtest.Write(t, filepath.Join(dir, "mallory.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "name", "ad\u200bmin")))
	keydirtest.Write(t, opts.Files[0], keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 4), "name", "r\u202eoot")))
	s.Loader().Reload()
	if got := log.String(); strings.Count(got, msg) != 3 || !strings.Contains(got, `name="r\u202eoot"`) {
		t.Fatalf("after they came back:\n%s", got)
	}
	fresh := Load(HomeOptions(home))
	if a, b := fmt.Sprint(s.UnprintableNames()), fmt.Sprint(fresh.UnprintableNames()); a != b || len(s.UnprintableNames()) != 2 {
		t.Fatalf("after the reloads: %s; a fresh load: %s", a, b)
	}
	if !maps.Equal(s.snap.Load().unprintable, fresh.snap.Load().unprintable) {
		t.Fatalf("counted %v, a fresh load %v", s.snap.Load().unprintable, fresh.snap.Load().unprintable)
	}
}
