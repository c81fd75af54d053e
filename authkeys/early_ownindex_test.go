package authkeys

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A server whose user may not write the home keeps an admin index of its
// own elsewhere (Options.Index: keytool proxy --index-dir), which no admin
// command keeps: each start's proof brings it up to date from the files'
// stamps (the admin's changes read and indexed), and a start whose proof
// could not (many files changed since) rewrites it from its full load, so
// that the start after decides early again.
func TestEarlyServerKeepsAnIndexOfItsOwn(t *testing.T) {
	opts, start := ownIndexHome(t)
	start("the first start", false, 3)
	if _, err := os.Stat(filepath.Join(opts.Home, ".index")); !os.IsNotExist(err) {
		t.Fatalf("the server wrote the home's index (%v), not its own", err)
	}
	start("the next start, from its own index", true, 3)

	// An admin command adds a key through the home's index; the server's
	// proof finds the file by its stamp.
	admin := HomeOptions(opts.Home)
	s, finish := LoadFor(admin, Lookups{Keys: [][32]byte{key(t, 40).SPKIHash()}, Names: []string{"k40"}})
	if _, err := s.Add(key(t, 40), "k40", AddNew); err != nil {
		t.Fatal(err)
	}
	finish()
	start("after an admin's authorize", true, 40)

	rewriteMostFiles(t, opts, start)
}

// ownIndexHome is a home of 300 authorized keys (directories of 10 files
// or more indexed) whose server keeps its index elsewhere, and start, one
// start of that server: what it is, whether its decision on key k must be
// early (then Authorized), each start closed (its index written) before
// the next.
func ownIndexHome(t *testing.T) (Options, func(what string, wantEarly bool, k int)) {
	t.Helper()
	recordStamps(t)
	opts := fillHome(t, 300)
	keydir.IndexMinFiles = 10
	opts.Index = filepath.Join(t.TempDir(), "cache", "keytool")
	local := netip.MustParseAddr("127.0.0.1")
	return opts, func(what string, wantEarly bool, k int) {
		t.Helper()
		s, _, release := openEarlyHeld(t, opts)
		d, _, ok := decideWithin(s, key(t, k).SPKIHash(), local, 2*time.Second)
		switch {
		case ok != wantEarly:
			t.Fatalf("%s: decided early: %v, want %v", what, ok, wantEarly)
		case ok && d.Verdict != Authorized:
			t.Fatalf("%s: %v, want Authorized", what, d.Verdict)
		}
		release()
		s.Close() // waits for the index to be written
		earlyProved = nil
	}
}

// rewriteMostFiles is config management rewriting most files of opts'
// authorized_keys.d (more than 256, and a quarter): the next start's
// proof gives up, and its full load writes the index anew, so that the
// start after decides early again.
func rewriteMostFiles(t *testing.T, opts Options, start func(what string, wantEarly bool, k int)) {
	t.Helper()
	for i := range 280 {
		keydirtest.Write(t, filepath.Join(opts.Dirs[0], "k"+strconv.Itoa(i)+".json"), keydirtest.JWK(t, key(t, i)))
	}
	start("after most files were rewritten", false, 25)
	start("the start after that", true, 25)
}

// A server's own index is read through the trust-file rule as the home's
// is, its directory standing for the home: one that others may write is
// not used (they could hide a file's records from it), and the server
// says why.
func TestEarlyOwnIndexFollowsTheRule(t *testing.T) {
	recordStamps(t)
	opts := fillHome(t, 30)
	keydir.IndexMinFiles = 10
	opts.Index = filepath.Join(t.TempDir(), "keytool")
	startLog(opts) // writes the index
	if err := os.Chmod(opts.Index, 0o777); err != nil {
		t.Fatal(err)
	}
	s, _, release := openEarlyHeld(t, opts)
	if d, _, ok := decideWithin(s, key(t, 3).SPKIHash(), netip.MustParseAddr("127.0.0.1"), 300*time.Millisecond); ok {
		t.Errorf("decided early (%v) from an index others may write", d.Verdict)
	}
	release()
	s.Close()
	earlyProved = nil
	checkLog(t, startLog(opts), []string{`msg="first clients wait for the full load"`, "cannot be used: permissions 0777", "are too open: group or others could write to it", `msg="admin index not written"`}, []string{"the full load writes one"})
}

// A server whose proof could not bring the index up to date writes it
// anew after its full load — unless another process wrote it since that
// load began. Server B's proof fails (most files renamed in), and its
// full load reads F (key 0); F is then written in place (key 500,
// expired: F sorts before G, which authorizes key 500, and the first
// entry wins); an admin command rebuilds the index from the files as
// they are, and server A proves it. B's write must leave that index be:
// written from B's older snapshot at the same head, it named G alone for
// key 500, and A decided Authorized early where the full load says
// Expired (found by review, with this test).
func TestEarlyRewriteLeavesAnIndexWrittenSince(t *testing.T) {
	recordStamps(t)
	opts := fillHome(t, 400)
	keydir.IndexMinFiles = 10
	dir := opts.Dirs[0]
	f, g := filepath.Join(dir, "k0.json"), filepath.Join(dir, "k1.json")
	keydirtest.Write(t, g, keydirtest.JWK(t, key(t, 500)))
	admin := func() {
		_, finish := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 3).SPKIHash()}})
		finish()
	}
	admin()
	for i := 100; i < 400; i++ { // renamed in: 300 stamps change
		p := filepath.Join(dir, "k"+strconv.Itoa(i)+".json")
		keydirtest.Write(t, p+".tmp~", keydirtest.JWK(t, key(t, i)))
		if err := os.Rename(p+".tmp~", p); err != nil {
			t.Fatal(err)
		}
	}

	// Server B: its proof, IndexAfter, its full load.
	n := newStore(opts)
	n.IndexBy(entryTerms)
	err := n.Loader().LoadProved(keydir.Query{})
	n.Close()
	var np *keydir.NotProvedError
	if !errors.As(err, &np) || !np.Unproved {
		t.Fatalf("B's proof: %v, want Unproved", err)
	}
	b := newStore(opts)
	b.IndexBy(entryTerms)
	write := b.Loader().IndexAfter(err)
	b.Loader().Reload()

	keydirtest.WriteInPlace(t, f, keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 500), "expires", "2001-01-01T00:00:00Z")))
	admin() // the index unprovable for it too: every file read, the index rebuilt

	a, e, _ := openEarlyHeld(t, opts) // server A
	if e.store == nil {
		t.Fatal("A did not prove the index the admin command rebuilt")
	}
	heads := func() (out []os.FileInfo) {
		paths, _ := filepath.Glob(filepath.Join(opts.Index, "*", "head"))
		for _, p := range paths {
			if fi, err := os.Stat(p); err == nil {
				out = append(out, fi)
			}
		}
		return out
	}
	before := heads()
	if err := write(); err != nil { // B's
		t.Fatal(err)
	}
	if after := heads(); !slices.EqualFunc(before, after, os.SameFile) {
		t.Error("B wrote the index anew over the one the admin command wrote since its load began")
	}
	local := netip.MustParseAddr("127.0.0.1")
	full := Load(opts).Decide(key(t, 500).SPKIHash(), local)
	if full.Verdict != Expired {
		t.Fatalf("the full load: %v, want Expired (F's entry)", full.Verdict)
	}
	if early, _, ok := decideWithin(a, key(t, 500).SPKIHash(), local, 2*time.Second); ok && early.Verdict != full.Verdict {
		t.Errorf("decided %v early, where the full load decides %v", early.Verdict, full.Verdict)
	}
}

// An index written anew after a server proved it is no longer the one
// proved, even at the same head: the server's next decision waits for
// its full load rather than read records it did not prove. Server B's
// proof fails on the same index (its stamp files gone: nothing for a
// proof to compare), and B writes it anew after its full load.
func TestEarlyDecisionsStopOnAnIndexWrittenAnew(t *testing.T) {
	opts := indexedHome(t, 30, nil)
	a, release := provedAndDecidedEarly(t, opts, "before the index is written anew")
	stampFiles, _ := filepath.Glob(filepath.Join(opts.Index, "*", "s[0-9]*"))
	for _, f := range stampFiles {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	n := newStore(opts)
	n.IndexBy(entryTerms)
	err := n.Loader().LoadProved(keydir.Query{})
	n.Close()
	if np := (*keydir.NotProvedError)(nil); !errors.As(err, &np) || !np.Unproved {
		t.Fatalf("B's proof without stamp files: %v, want Unproved", err)
	}
	b := newStore(opts)
	b.IndexBy(entryTerms)
	write := b.Loader().IndexAfter(err)
	b.Loader().Reload()
	if err := write(); err != nil {
		t.Fatal(err)
	}
	if d, late, ok := decideWithin(a, key(t, 4).SPKIHash(), netip.MustParseAddr("127.0.0.1"), 300*time.Millisecond); ok {
		t.Errorf("decided %v early from an index written anew since the proof", d.Verdict)
	} else {
		release()
		if d := <-late; d.Verdict != Authorized {
			t.Errorf("after the full load: %v", d.Verdict)
		}
	}
}

// An index directory the rule refuses, empty at the first start (its
// per-directory index not made yet, so that opening that says only "no
// such file"): nothing is written into it but the lock, and the server
// says why (found by review: a whole index was written there, never to
// be read, into a directory others may write).
func TestEarlyOwnIndexRefusedIsNotWrittenInto(t *testing.T) {
	recordStamps(t)
	opts := fillHome(t, 30)
	keydir.IndexMinFiles = 10
	opts.Index = filepath.Join(t.TempDir(), "keytool")
	if err := os.Mkdir(opts.Index, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(opts.Index, 0o777); err != nil {
		t.Fatal(err)
	}
	checkLog(t, startLog(opts), []string{`msg="admin index not written"`, "are too open"}, nil)
	entries, err := os.ReadDir(opts.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != ".keytool.lock" {
			t.Errorf("%s written into a directory the rule refuses", e.Name())
		}
	}
}

// Another process's proof of the index — a second server starting, an
// admin command's removal — adds what it read (a file too recent to be
// stamped at this server's proof, a skipped file's record, read by every
// proof) and rebuilds nothing: this server's early decisions go on
// (found by review, where any write into the index's directory stopped
// them).
func TestEarlyDecisionsGoOnAfterAnotherProof(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, opts Options)
	}{
		{"a file stamped since", func(t *testing.T, opts Options) {
			keydir.StampRacy = 300 * time.Millisecond
			s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 40).SPKIHash()}, Names: []string{"k40"}})
			if _, err := s.Add(key(t, 40), "k40", AddNew); err != nil {
				t.Fatal(err)
			}
			finish()
		}},
		{"a skipped file", func(t *testing.T, opts Options) {
			keydirtest.Write(t, filepath.Join(opts.Dirs[0], "broken.json"), []byte("not json\n"))
			_, finish := LoadFor(opts, Lookups{})
			finish()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := indexedHome(t, 30, nil)
			c.setup(t, opts)
			a, release := provedAndDecidedEarly(t, opts, "after the proof")
			time.Sleep(keydir.StampRacy + 100*time.Millisecond)
			b := newStore(opts)
			b.IndexBy(entryTerms)
			if err := b.Loader().LoadProved(keydir.Query{}); err != nil {
				t.Fatalf("the other proof: %v", err)
			}
			b.Close()
			if _, late, ok := decideWithin(a, key(t, 4).SPKIHash(), netip.MustParseAddr("127.0.0.1"), time.Second); !ok {
				t.Error("early decisions stopped after another process's proof, where nothing was rebuilt")
				release()
				<-late
			}
		})
	}
}

// A rebuild by a keytool that writes no generation (every one before
// session 32) is noticed all the same: it writes a new head file. Here
// the head is written again, byte for byte, the generation left as it
// was; the server that proved the index waits for its full load (found
// by review, where only the generation was compared).
func TestEarlyDecisionsStopOnARebuildThatKeepsTheGeneration(t *testing.T) {
	opts := indexedHome(t, 30, nil)
	a, release := provedAndDecidedEarly(t, opts, "before the rebuild")
	heads, _ := filepath.Glob(filepath.Join(opts.Index, "*", "head"))
	for _, h := range heads {
		data, err := os.ReadFile(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(h); err != nil {
			t.Fatal(err)
		}
		keydirtest.Write(t, h, data)
		if err := os.Chmod(h, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if d, late, ok := decideWithin(a, key(t, 4).SPKIHash(), netip.MustParseAddr("127.0.0.1"), 300*time.Millisecond); ok {
		t.Errorf("decided %v early from an index rebuilt since the proof", d.Verdict)
	} else {
		release()
		<-late
	}
}

// A server's own index with no generation — one a keytool before
// session 32 wrote, or one whose generation a crash lost (no fsync) — is
// still written anew once its proof fails (found by review: it was
// never, and no admin command keeps that index).
func TestEarlyOwnIndexWithoutAGenerationIsRewritten(t *testing.T) {
	opts, start := ownIndexHome(t)
	start("the first start", false, 3)
	gens, _ := filepath.Glob(filepath.Join(opts.Index, "*", "gen"))
	if len(gens) == 0 {
		t.Fatal("no generation written")
	}
	for _, g := range gens {
		if err := os.Remove(g); err != nil {
			t.Fatal(err)
		}
	}
	start("an index without a generation", true, 3)
	rewriteMostFiles(t, opts, start)
}

// provedAndDecidedEarly opens a server early on opts, its full load held
// (openEarlyHeld), requires that it proved the index and that it decides
// key 3 early (what: when, for the message), and returns it with the
// release of its full load.
func provedAndDecidedEarly(t *testing.T, opts Options, what string) (*Store, func()) {
	t.Helper()
	a, e, release := openEarlyHeld(t, opts)
	if e.store == nil {
		t.Fatal("no proof")
	}
	decidedEarly(t, a, key(t, 3).SPKIHash(), Authorized, what)
	return a, release
}
