package authkeys

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/testlog"
)

// openEarlyHeld is OpenEarly, once its proof has ended, with its full
// load held until release (or the test's end), and the state of its
// early decisions.
func openEarlyHeld(t *testing.T, opts Options) (s *Store, e *early, release func()) {
	t.Helper()
	hold, proved := make(chan struct{}), make(chan struct{})
	release = sync.OnceFunc(func() { close(hold) })
	earlyProved = func() { close(proved); <-hold }
	s = OpenEarly(context.Background(), opts)
	e = s.early.Load()
	<-proved
	t.Cleanup(func() {
		release()
		s.Close()
		earlyProved = nil
	})
	return s, e, release
}

// indexedHome is fillHome with its admin index made (by an admin
// command's load), the files' stamps recorded, and directories below 10
// files read whole (IndexMinFiles) as a small revoked_keys.d/ is. before,
// if set, writes more files before the index is made.
func indexedHome(t *testing.T, n int, before func(opts Options)) Options {
	t.Helper()
	recordStamps(t)
	opts := fillHome(t, n)
	if before != nil {
		before(opts)
	}
	_, finish := LoadFor(opts, Lookups{})
	finish()
	keydir.IndexMinFiles = 10
	return opts
}

// decideWithin is s.Decide(sum, remote), or ok false if it has not
// returned within d (it is waiting for the full load; its result is
// then sent on late).
func decideWithin(s *Store, sum [32]byte, remote netip.Addr, d time.Duration) (dec Decision, late <-chan Decision, ok bool) {
	ch := make(chan Decision, 1)
	go func() { ch <- s.Decide(sum, remote) }()
	select {
	case dec := <-ch:
		return dec, nil, true
	case <-time.After(d):
		return Decision{}, ch, false
	}
}

// decidedEarly fails t unless s decides the key of SPKI hash sum, from
// 127.0.0.1, before its full load (within 2 s) as want; what names the
// key and the moment.
func decidedEarly(t *testing.T, s *Store, sum [32]byte, want Verdict, what string) {
	t.Helper()
	if got, _, ok := decideWithin(s, sum, netip.MustParseAddr("127.0.0.1"), 2*time.Second); !ok || got.Verdict != want {
		t.Fatalf("%s: %v (early: %v), want %v early", what, got.Verdict, ok, want)
	}
}

// same reports how two decisions differ ("" if they do not): verdict,
// the entry decided on, and the error.
func same(a, b Decision) string {
	name := func(d Decision) string {
		if d.Entry == nil {
			return "<nil>"
		}
		return d.Entry.Name + " in " + filepath.Base(d.Entry.File)
	}
	if a.Verdict != b.Verdict || name(a) != name(b) || fmt.Sprint(a.Err) != fmt.Sprint(b.Err) || a.Incomplete != b.Incomplete {
		return fmt.Sprintf("%v %s %v, want %v %s %v", a.Verdict, name(a), a.Err, b.Verdict, name(b), b.Err)
	}
	return ""
}

// Every decision answered before the full load is the full load's: on
// an index proved from the files' stamps after the files changed behind
// it in place (an entry rewritten to hold another key, a revocation
// moved to another key), for authorized, revoked, expired and
// wrong-network keys alike. Keys the index does not know wait for the
// full load.
func TestEarlyDecisionsAreTheFullLoads(t *testing.T) {
	opts := indexedHome(t, 30, func(opts Options) {
		d, r := opts.Dirs[0], opts.RevokedDirs[0]
		keydirtest.Write(t, filepath.Join(r, "r.json"), keydirtest.JWK(t, key(t, 8)))
		keydirtest.Write(t, filepath.Join(d, "old.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 31), "expires", "2001-01-01T00:00:00Z")))
		from := keydirtest.WithAttrs(key(t, 32), "name", "netted")
		from.Attrs.SetList("from", []string{"10.0.0.0/8"})
		keydirtest.Write(t, filepath.Join(d, "netted.json"), keydirtest.JWK(t, from))
		keydirtest.Write(t, filepath.Join(d, "twice.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "expires", "2001-01-01T00:00:00Z")))
	})
	d, r := opts.Dirs[0], opts.RevokedDirs[0]
	// Behind the index's back, in place: k5.json now holds key 40, and
	// the revocation moves from key 8 to key 9.
	keydirtest.WriteInPlace(t, filepath.Join(d, "k5.json"), keydirtest.JWK(t, key(t, 40)))
	keydirtest.WriteInPlace(t, filepath.Join(r, "r.json"), keydirtest.JWK(t, key(t, 9)))

	s, e, release := openEarlyHeld(t, opts)
	full := Load(opts)
	local, inside := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3")
	cases := []struct {
		key    int
		remote netip.Addr
		early  bool
	}{
		{3, local, true},   // authorized
		{40, local, true},  // authorized by the in-place edit
		{9, local, true},   // revoked in place (asked first: the index named r.json for key 8)
		{8, local, true},   // no longer revoked
		{31, local, true},  // expired
		{32, local, true},  // outside its "from"
		{32, inside, true}, // inside it
		{2, local, true},   // two entries: the first (k2.json) is in effect
		{5, local, false},  // gone from k5.json: unknown, left to the full load
		{99, local, false}, // never known
	}
	var waiting []func()
	for _, c := range cases {
		sum := key(t, c.key).SPKIHash()
		want := full.Decide(sum, c.remote)
		got, late, ok := decideWithin(s, sum, c.remote, 300*time.Millisecond)
		if ok != c.early {
			t.Errorf("key %d from %v: answered before the full load: %v, want %v", c.key, c.remote, ok, c.early)
		}
		if ok {
			if diff := same(got, want); diff != "" {
				t.Errorf("key %d from %v, early: %s", c.key, c.remote, diff)
			}
			continue
		}
		waiting = append(waiting, func() {
			if diff := same(<-late, want); diff != "" {
				t.Errorf("key %d from %v, after the full load: %s", c.key, c.remote, diff)
			}
		})
	}
	if e.decided != 8 {
		t.Errorf("%d decisions answered early, want 8", e.decided)
	}
	if n := len(e.store.Loader().Snapshot().Files()); n > 10 {
		t.Errorf("the early decisions read %d files, want those of the keys asked", n)
	}
	release()
	for _, w := range waiting {
		w()
	}
	<-s.Loaded()
	if len(s.Entries()) != len(full.Entries()) {
		t.Errorf("after the full load: %d entries, want %d", len(s.Entries()), len(full.Entries()))
	}
}

// Once a file of the store changes after the proof, no decision is
// answered early: a key removed in place is not admitted on the strength
// of the index, nor is any other key, until the full load decides.
func TestEarlyDecisionsStopOnChange(t *testing.T) {
	opts := indexedHome(t, 30, nil)
	d := opts.Dirs[0]
	s, _, release := openEarlyHeld(t, opts)
	local := netip.MustParseAddr("127.0.0.1")
	three := key(t, 3).SPKIHash()
	decidedEarly(t, s, three, Authorized, "key 3 before the change")
	keydirtest.WriteInPlace(t, filepath.Join(d, "k3.json"), keydirtest.JWK(t, key(t, 41)))
	// The event may take a moment to come; until it does the decision is
	// the one a watching store's snapshot also gives for a moment.
	deadline := time.Now().Add(5 * time.Second)
	var late <-chan Decision
	for {
		got, l, ok := decideWithin(s, three, local, 300*time.Millisecond)
		if !ok {
			late = l
			break
		}
		if got.Verdict != Authorized || time.Now().After(deadline) {
			t.Fatalf("key 3 removed in place: %v answered early, want to wait for the full load", got.Verdict)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, ok := decideWithin(s, key(t, 4).SPKIHash(), local, 300*time.Millisecond); ok {
		t.Error("key 4 answered early after a change")
	}
	// What tlsbridge.LiveConns decides the connections admitted early
	// again on: the full load's publication is a change.
	told := make(chan struct{}, 1)
	defer s.OnChange(func(Change) {
		select {
		case told <- struct{}{}:
		default:
		}
	})()
	release()
	if got := <-late; got.Verdict != Unknown {
		t.Errorf("key 3 after the full load: %v, want Unknown", got.Verdict)
	}
	select {
	case <-told:
	case <-time.After(10 * time.Second):
		t.Error("no change told when the full load was published")
	}
}

// Where no admin command made an index, no decision is answered early:
// a directory of IndexMinFiles files or more would take a full load to
// prove, and a home without an index directory is a small one, which
// loads in full about as fast.
func TestEarlyDecisionsNeedAnIndex(t *testing.T) {
	for _, c := range []struct {
		name  string
		files int
	}{{"large", 0}, {"none", 1000}} {
		t.Run(c.name, func(t *testing.T) {
			opts := fillHome(t, 5)
			keydir.IndexMinFiles = c.files
			s, e, release := openEarlyHeld(t, opts)
			if _, _, ok := decideWithin(s, key(t, 1).SPKIHash(), netip.Addr{}, 300*time.Millisecond); ok || e.store != nil {
				t.Error("answered early without an index")
			}
			release()
			if d := s.Decide(key(t, 1).SPKIHash(), netip.Addr{}); d.Verdict != Authorized {
				t.Errorf("after the full load: %v", d.Verdict)
			}
		})
	}
}

// Early decisions from many goroutines at once, during the full load
// and across its publication, are each the full load's (run with -race).
func TestEarlyDecisionsConcurrent(t *testing.T) {
	opts := indexedHome(t, 40, nil)
	s := OpenEarly(context.Background(), opts)
	defer s.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 60 {
				k := (g*7 + i) % 45 // keys 40–44 are unknown
				d := s.Decide(key(t, k).SPKIHash(), netip.Addr{})
				if want := k < 40; (d.Verdict == Authorized) != want {
					t.Errorf("key %d: %v", k, d.Verdict)
				}
			}
		})
	}
	wg.Wait()
}

// A store of no files at all is loaded too: nothing waits for ever.
func TestEarlyEmptyStore(t *testing.T) {
	s := OpenEarly(context.Background(), HomeOptions(t.TempDir()))
	defer s.Close()
	if n := len(s.Entries()); n != 0 {
		t.Errorf("%d entries", n)
	}
	if d := s.Decide(key(t, 1).SPKIHash(), netip.Addr{}); d.Verdict != Unknown {
		t.Errorf("%v", d.Verdict)
	}
}

// Files a watch of the directory cannot see written — a revocation file
// that is a symbolic link out of the home, an entry that is one, an
// entry with a second hard link elsewhere — are read again at every
// early decision: each is rewritten through its other path after the
// proof, with no event and no change of any directory's stamp (key 3
// revoked, keys 4 and 5 given an expired entry in a file before theirs),
// and no early decision admits the key the full load refuses.
func TestEarlyDecisionsReadAliasedFiles(t *testing.T) {
	var targets string
	opts := indexedHome(t, 30, func(opts Options) {
		d, r := opts.Dirs[0], opts.RevokedDirs[0]
		targets = filepath.Join(opts.Home, "targets")
		keydirtest.Write(t, filepath.Join(targets, "r.json"), keydirtest.JWK(t, key(t, 50)))
		keydirtest.Write(t, filepath.Join(targets, "a0.json"), keydirtest.JWK(t, key(t, 51)))
		if err := os.MkdirAll(r, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, link := range [][2]string{{filepath.Join(targets, "r.json"), filepath.Join(r, "r.json")}, {filepath.Join(targets, "a0.json"), filepath.Join(d, "a0.json")}} {
			if err := os.Symlink(link[0], link[1]); err != nil {
				t.Fatal(err)
			}
		}
		keydirtest.Write(t, filepath.Join(d, "a1.json"), keydirtest.JWK(t, key(t, 52)))
		if err := os.Link(filepath.Join(d, "a1.json"), filepath.Join(targets, "a1.json")); err != nil {
			t.Fatal(err)
		}
	})
	s, _, _ := openEarlyHeld(t, opts)
	local := netip.MustParseAddr("127.0.0.1")
	for _, k := range []int{3, 4, 5} {
		decidedEarly(t, s, key(t, k).SPKIHash(), Authorized, fmt.Sprintf("key %d before", k))
	}
	keydirtest.WriteInPlace(t, filepath.Join(targets, "r.json"), keydirtest.JWK(t, key(t, 3)))
	keydirtest.WriteInPlace(t, filepath.Join(targets, "a0.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 4), "expires", "2001-01-01T00:00:00Z")))
	keydirtest.WriteInPlace(t, filepath.Join(targets, "a1.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 5), "expires", "2001-01-01T00:00:00Z")))
	full := Load(opts)
	for _, k := range []int{3, 4, 5} {
		want := full.Decide(key(t, k).SPKIHash(), local)
		if want.Verdict == Authorized {
			t.Fatalf("key %d: the full load admits it: the test's edits did not take", k)
		}
		got, _, ok := decideWithin(s, key(t, k).SPKIHash(), local, 300*time.Millisecond)
		if ok && got.Verdict == Authorized {
			t.Errorf("key %d, changed through another path: Authorized early, the full load says %v", k, want.Verdict)
		}
	}
}

// Each early decision examines again the files the index names for its
// key, whether or not the key was asked before: a file linked from
// elsewhere after the proof (no event in its directory, which the
// directory's watch does not see) and rewritten through that link is
// read as it is now, and the key it no longer holds is not admitted
// early. The files of the keys asked before are not examined again: the
// watch stands for them (ExtendProved), and a write into one of them
// through the directory stops the early decisions
// (TestEarlyDecisionsStopOnChange).
func TestEarlyDecisionsReadTheKeysFilesAgain(t *testing.T) {
	opts := indexedHome(t, 30, nil)
	s, _, release := openEarlyHeld(t, opts)
	local := netip.MustParseAddr("127.0.0.1")
	three := key(t, 3).SPKIHash()
	for _, k := range []int{3, 4} {
		decidedEarly(t, s, key(t, k).SPKIHash(), Authorized, fmt.Sprintf("key %d", k))
	}
	elsewhere := filepath.Join(opts.Home, "elsewhere")
	if err := os.MkdirAll(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(elsewhere, "k3.json")
	if err := os.Link(filepath.Join(opts.Dirs[0], "k3.json"), link); err != nil {
		t.Fatal(err)
	}
	keydirtest.WriteInPlace(t, link, keydirtest.JWK(t, key(t, 41)))
	// The write sent no event the early decisions see: they go on, and
	// what refuses key 3 below is its file examined again.
	decidedEarly(t, s, key(t, 5).SPKIHash(), Authorized, "key 5 after the write through the link")
	got, late, ok := decideWithin(s, three, local, 300*time.Millisecond)
	if ok && got.Verdict == Authorized {
		t.Fatal("key 3, rewritten out of its file through a link made after the proof: Authorized early")
	}
	// Key 3, in no file now, is Unknown, which waits for the full load;
	// the early decisions did not stop.
	decidedEarly(t, s, key(t, 6).SPKIHash(), Authorized, "key 6 after key 3's decision")
	release()
	if late != nil {
		got = <-late
	}
	if got.Verdict != Unknown {
		t.Errorf("key 3 after the full load: %v, want Unknown", got.Verdict)
	}
}

// A revocation directory of IndexMinFiles files or more is read whole
// once, at the proof, and then at each decision only through its files
// no watch sees written: a revocation linked in from elsewhere and
// rewritten there refuses its key at the next decision, early; a
// revocation file added stops the early decisions (the directory's
// stamp, or its event). Before, such a directory allowed no early
// decision at all.
func TestEarlyDecisionsLargeRevocationDirectory(t *testing.T) {
	var target string
	opts := indexedHome(t, 30, func(opts Options) {
		r := opts.RevokedDirs[0]
		revokeUnknown(t, r)
		keydirtest.Write(t, filepath.Join(r, "r5.json"), keydirtest.JWK(t, key(t, 5)))
		target = filepath.Join(opts.Home, "elsewhere", "linked.json")
		keydirtest.Write(t, target, keydirtest.JWK(t, key(t, 50)))
		if err := os.Symlink(target, filepath.Join(r, "linked.json")); err != nil {
			t.Fatal(err)
		}
	})
	s, e, release := openEarlyHeld(t, opts)
	local := netip.MustParseAddr("127.0.0.1")
	for _, c := range []struct {
		key  int
		want Verdict
	}{{5, Revoked}, {3, Authorized}, {4, Authorized}} {
		decidedEarly(t, s, key(t, c.key).SPKIHash(), c.want, fmt.Sprintf("key %d", c.key))
	}
	keydirtest.WriteInPlace(t, target, keydirtest.JWK(t, key(t, 4)))
	decidedEarly(t, s, key(t, 4).SPKIHash(), Revoked, "key 4, revoked through a link after the proof")
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "new.json"), keydirtest.JWK(t, key(t, 3)))
	got, late, ok := decideWithin(s, key(t, 3).SPKIHash(), local, 300*time.Millisecond)
	if ok && got.Verdict != Revoked {
		t.Fatalf("key 3, revoked by a file added after the proof: %v early", got.Verdict)
	}
	decided := e.decided
	release()
	if late != nil {
		got = <-late
	}
	if got.Verdict != Revoked {
		t.Errorf("key 3 after the full load: %v, want Revoked", got.Verdict)
	}
	if decided < 4 {
		t.Errorf("%d decisions early, want 4 at least", decided)
	}
}

// A symbolic link to a directory in a source directory is no file a
// load reads; once its target is replaced by a key file (outside every
// watched directory: no event, no stamp of a source moved), the next
// early decision reads it, as the full load does — in a large revocation
// directory as in one of authorized keys (found by review: such a link
// was left out of the files examined at every decision).
func TestEarlyDecisionsLinkToADirectory(t *testing.T) {
	for _, revoked := range []bool{true, false} {
		t.Run(fmt.Sprintf("revocations=%v", revoked), func(t *testing.T) {
			var target string
			opts := indexedHome(t, 30, func(opts Options) {
				r := opts.RevokedDirs[0]
				revokeUnknown(t, r)
				target = filepath.Join(opts.Home, "elsewhere", "d")
				if err := os.MkdirAll(target, 0o700); err != nil {
					t.Fatal(err)
				}
				dir := opts.Dirs[0]
				if revoked {
					dir = r
				}
				if err := os.Symlink(target, filepath.Join(dir, "a0.json")); err != nil {
					t.Fatal(err)
				}
			})
			s, _, _ := openEarlyHeld(t, opts)
			local := netip.MustParseAddr("127.0.0.1")
			four := key(t, 4).SPKIHash()
			before := Authorized
			if revoked {
				before = Revoked // the link to a directory fails closed (keydir.ErrRevocationSubdirectory)
			}
			decidedEarly(t, s, four, before, "key 4 before")
			if err := os.Remove(target); err != nil {
				t.Fatal(err)
			}
			k := key(t, 4)
			if !revoked {
				k = keydirtest.WithAttrs(k, "expires", "2001-01-01T00:00:00Z") // in effect before k4.json's
			}
			keydirtest.Write(t, target, keydirtest.JWK(t, k))
			want := Load(opts).Decide(four, local).Verdict
			if want == Authorized {
				t.Fatal("the full load admits key 4: the test's edit did not take")
			}
			if got, _, ok := decideWithin(s, four, local, 300*time.Millisecond); ok && got.Verdict == Authorized {
				t.Errorf("key 4 after the link's target became a key file: Authorized early, the full load says %v", want)
			} else if ok && errors.Is(got.Err, keydir.ErrRevocationSubdirectory) {
				t.Errorf("key 4 after the link's target became a key file: still refused for the directory: %v", got.Err)
			}
			if revoked {
				// The link no longer names a directory: the others are
				// admitted again, early.
				decidedEarly(t, s, key(t, 5).SPKIHash(), Authorized, "key 5 after")
			}
		})
	}
}

// A large revocation directory whose path fails the trust-file rule for
// a moment (a parent made group-writable) refuses every key, as the full
// load does; once the parent is safe again, its revocations are all back
// in the early decisions, not only the files examined at every decision
// (found by review: the rest stayed gone, with no stamp moved and no
// event, and a revoked key was admitted early).
func TestEarlyDecisionsAfterADirectoryFailsItsCheck(t *testing.T) {
	var store string
	opts := indexedHome(t, 30, func(opts Options) {
		r := opts.RevokedDirs[0]
		store = filepath.Join(opts.Home, "store")
		real := filepath.Join(store, "rev")
		revokeUnknown(t, real)
		keydirtest.Write(t, filepath.Join(real, "r5.json"), keydirtest.JWK(t, key(t, 5)))
		if err := os.RemoveAll(r); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, r); err != nil {
			t.Fatal(err)
		}
	})
	s, _, _ := openEarlyHeld(t, opts)
	local := netip.MustParseAddr("127.0.0.1")
	five := key(t, 5).SPKIHash()
	decidedEarly(t, s, five, Revoked, "key 5 before")
	if err := os.Chmod(store, 0o775); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := decideWithin(s, key(t, 3).SPKIHash(), local, 300*time.Millisecond); ok && got.Verdict != Revoked {
		t.Fatalf("key 3 while the revocations' path is unsafe: %v early, want every key refused", got.Verdict)
	}
	if err := os.Chmod(store, 0o700); err != nil {
		t.Fatal(err)
	}
	if want := Load(opts).Decide(five, local).Verdict; want != Revoked {
		t.Fatalf("the full load says %v of key 5, want Revoked", want)
	}
	if got, _, ok := decideWithin(s, five, local, 300*time.Millisecond); ok && got.Verdict != Revoked {
		t.Errorf("key 5 once the path is safe again: %v early, want Revoked", got.Verdict)
	}
}

// revokeUnknown writes 12 revocation files into dir, of keys 100 to 111,
// which no file of indexedHome's authorizes: with keydir.IndexMinFiles
// at 10, a large revocation directory.
func revokeUnknown(t *testing.T, dir string) {
	t.Helper()
	for k := 100; k < 112; k++ {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("r%d.json", k)), keydirtest.JWK(t, key(t, k)))
	}
}

// A file added after the proof stops the early decisions at the next
// one, even before its event comes (the directory's stamp is no longer
// the one proved), for a key asked for the first time as for one decided
// early before from what was read then. (a0.json holds an expired copy
// of key 3, in effect before k3.json's.)
func TestEarlyDecisionsStopOnNewFile(t *testing.T) {
	for _, askedBefore := range []bool{false, true} {
		t.Run(fmt.Sprintf("asked-before=%v", askedBefore), func(t *testing.T) {
			opts := indexedHome(t, 30, nil)
			s, _, release := openEarlyHeld(t, opts)
			local := netip.MustParseAddr("127.0.0.1")
			three := key(t, 3).SPKIHash()
			if askedBefore {
				decidedEarly(t, s, three, Authorized, "key 3")
			}
			keydirtest.Write(t, filepath.Join(opts.Dirs[0], "a0.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 3), "expires", "2001-01-01T00:00:00Z")))
			got, late, ok := decideWithin(s, three, local, 300*time.Millisecond)
			if ok {
				t.Fatalf("key 3, after a file was added: %v answered early, want to wait for the full load", got.Verdict)
			}
			release()
			if got := <-late; got.Verdict != Expired {
				t.Errorf("after the full load: %v, want Expired", got.Verdict)
			}
		})
	}
}

// A large store that decides nothing early says why in its log, once,
// and so does a full load that could not leave the index for the next
// start; a small one, whose full load is about as fast, says nothing.
func TestEarlySaysWhyNot(t *testing.T) {
	for _, c := range []struct {
		name      string
		files     int // IndexMinFiles
		setup     func(t *testing.T, opts Options)
		want, not []string
	}{
		{name: "small", files: 1000, not: []string{"first clients wait", "admin index not written"}},
		{name: "no index", files: 10,
			want: []string{`msg="first clients wait for the full load"`, "no admin index yet", "the full load writes one for the next start"},
			not:  []string{"admin index not written"}},
		{name: "index cannot be made", files: 10,
			setup: func(t *testing.T, opts Options) {
				keydirtest.Write(t, filepath.Join(opts.Home, ".index"), []byte("not a directory\n"))
			},
			want: []string{`msg="first clients wait for the full load"`, "could not be locked: open ", ": not a directory", `msg="admin index not written"`, "keydir: no admin index written for ", "so the next start reads every file before deciding"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := fillHome(t, 30)
			keydir.IndexMinFiles = c.files
			if c.setup != nil {
				c.setup(t, opts)
			}
			checkLog(t, startLog(opts), c.want, c.not)
		})
	}
}

// startLog is what OpenEarly logs from its start to its end (the index
// written, or not).
func startLog(opts Options) string {
	var logs testlog.Buffer
	opts.Logger = logs.Logger()
	s := OpenEarly(context.Background(), opts)
	<-s.Loaded()
	s.Close() // waits for the index to be written, or not
	return logs.String()
}

// checkLog fails t where log lacks a line of want or has one of not.
func checkLog(t *testing.T, log string, want, not []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(log, w) {
			t.Errorf("the log lacks %q:\n%s", w, log)
		}
	}
	for _, w := range not {
		if strings.Contains(log, w) {
			t.Errorf("the log says %q:\n%s", w, log)
		}
	}
}

// A server's full load leaves the admin index where no admin command
// made one, so that its next start decides early; one that exists is
// left as it is.
func TestEarlyServerIndexesForItsNextStart(t *testing.T) {
	recordStamps(t)
	opts := fillHome(t, 30)
	keydir.IndexMinFiles = 10
	local := netip.MustParseAddr("127.0.0.1")
	s, _, release := openEarlyHeld(t, opts)
	if _, _, ok := decideWithin(s, key(t, 3).SPKIHash(), local, 300*time.Millisecond); ok {
		t.Fatal("answered early without an index")
	}
	release()
	<-s.Settled() // once the index is written
	earlyProved = nil

	s2, _, _ := openEarlyHeld(t, opts)
	if d, _, ok := decideWithin(s2, key(t, 3).SPKIHash(), local, 2*time.Second); !ok || d.Verdict != Authorized {
		t.Errorf("the next start: %v (early: %v), want Authorized early from the index the first one wrote", d.Verdict, ok)
	}
}

// An admin command holding the index's lock (a removal with a stale index
// holds it through a full load) costs a server's handshakes no more than
// its full load would: the early decision gives up on the lock within
// moments, and waits for the full load, which it takes as soon as that
// is published.
func TestEarlyDecisionsDoNotWaitOnTheIndexLock(t *testing.T) {
	opts := indexedHome(t, 30, nil)
	s, _, release := openEarlyHeld(t, opts)
	unlock, why, err := keydir.LockWriters(opts.Index)
	if err != nil || why != nil {
		t.Fatal(err, why)
	}
	defer unlock()
	local := netip.MustParseAddr("127.0.0.1")
	lates := make([]<-chan Decision, 2)
	for i, k := range []int{3, 4} {
		got, late, ok := decideWithin(s, key(t, k).SPKIHash(), local, 300*time.Millisecond)
		if ok {
			t.Fatalf("key %d with the index locked: %v answered early, want to wait for the full load", k, got.Verdict)
		}
		lates[i] = late
	}
	release()
	for i, late := range lates {
		select {
		case d := <-late:
			if d.Verdict != Authorized {
				t.Errorf("decision %d after the full load: %v", i, d.Verdict)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("decision %d still waiting 3 s after the full load was let go (the index lock is held for 10 s)", i)
		}
	}
}

// Once Loaded is closed, Problems are those of the full load: a caller
// waiting for it (the proxy's start, which tells "trust files were
// skipped" from "no key authorized yet") finds them.
func TestEarlyProblemsOnceLoaded(t *testing.T) {
	for range 20 {
		home := t.TempDir()
		opts := HomeOptions(home)
		keydirtest.Write(t, filepath.Join(opts.Dirs[0], "k.json"), keydirtest.JWK(t, key(t, 1)))
		if err := os.Chmod(opts.Dirs[0], 0o777); err != nil {
			t.Fatal(err)
		}
		s := OpenEarly(context.Background(), opts)
		<-s.Loaded()
		if len(s.Problems()) == 0 {
			t.Fatal("no problem once loaded, with authorized_keys.d open to everyone")
		}
		s.Close()
	}
}
