package authkeys

import (
	"net/netip"
	"os"
	"path/filepath"
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
	recordStamps(t)
	opts := fillHome(t, 300)
	keydir.IndexMinFiles = 10
	opts.Index = filepath.Join(t.TempDir(), "cache", "keytool")
	local := netip.MustParseAddr("127.0.0.1")
	start := func(what string, wantEarly bool, k int) {
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

	// Config management rewrites most files (more than 256, and a
	// quarter): the proof gives up, and the full load rewrites the index.
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
	checkLog(t, startLog(opts), []string{`msg="first clients wait for the full load"`, "are too open: group or others could write to it"}, nil)
}
