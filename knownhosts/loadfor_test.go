package knownhosts

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A store LoadFor narrowed to one address decides for that address as a
// full store does: an exact pin, a port-less pin, a wildcard pin and a
// revoked key are all read, whatever else the directory holds.
func TestLoadForDecidesAsAFullStore(t *testing.T) {
	old := keydir.IndexMinFiles
	keydir.IndexMinFiles = 0
	t.Cleanup(func() { keydir.IndexMinFiles = old })
	home := t.TempDir()
	opts := HomeOptions(home)
	d := opts.Dirs[0]
	for i := range 20 {
		keydirtest.Write(t, filepath.Join(d, "h"+strconv.Itoa(i)+".json"),
			keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 100+i), "address", "h"+strconv.Itoa(i)+".example:443")))
	}
	keydirtest.Write(t, filepath.Join(d, "exact.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 1), "address", "web.example:443")))
	keydirtest.Write(t, filepath.Join(d, "portless.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "address", "api.example")))
	keydirtest.Write(t, filepath.Join(d, "wild.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 3), "address", "*.wild.example")))
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "r.json"), keydirtest.JWK(t, key(t, 4)))
	_, finish := LoadFor(opts, Lookups{})
	finish()

	full := Load(opts)
	for _, tc := range []struct {
		addr string
		key  int
	}{
		{"web.example:443", 5}, {"web.example:443", 1}, {"api.example:8443", 5}, {"api.example:8443", 2},
		{"x.wild.example:443", 5}, {"x.wild.example:443", 3}, {"new.example:443", 4}, {"h3.example:443", 103},
		{"h3.example:443", 1}, {"new.example:443", 5},
	} {
		s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{key(t, tc.key).SPKIHash()}, Addrs: []string{tc.addr}})
		if n := len(s.Loader().Snapshot().Files()); n > 4 {
			t.Errorf("%s: read %d files, want only those that can matter", tc.addr, n)
		}
		got, want := s.Decide(tc.addr, key(t, tc.key).SPKIHash()), full.Decide(tc.addr, key(t, tc.key).SPKIHash())
		finish()
		if got.Verdict != want.Verdict || errors.Unwrap(got.Err) != errors.Unwrap(want.Err) || (got.Err == nil) != (want.Err == nil) ||
			got.Err != nil && got.Err.Error() != want.Err.Error() {
			t.Errorf("%s, key %d: LoadFor decides %v (%v), a full store %v (%v)", tc.addr, tc.key, got.Verdict, got.Err, want.Verdict, want.Err)
		}
	}
}

// An address or key written into a file in place (no rename, so the
// admin index's stamp does not change) is still found by a removal:
// unpinning an address, a key, or a key of an address takes that copy
// too, after the pin the index names, which goes before the proof
// (docs/design.md, "The admin index": enforce first).
//
// Files written moments ago have no stamp in the index (keydir.StampRacy)
// and are read by every removal; with stamps recorded, the removal reads
// h5.json because its stamp changed.
func TestLoadForRemoveSeesInPlaceEdits(t *testing.T) {
	old, oldRacy := keydir.IndexMinFiles, keydir.StampRacy
	keydir.IndexMinFiles = 0
	t.Cleanup(func() { keydir.IndexMinFiles, keydir.StampRacy = old, oldRacy })
	for _, racy := range []time.Duration{oldRacy, 0} {
		keydir.StampRacy = racy
		t.Run("racy="+racy.String(), func(t *testing.T) { removeSeesInPlaceEdits(t) })
	}
}

func removeSeesInPlaceEdits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove func(s *Store) ([]Removed, error)
		lookup Lookups
	}{
		{"address", func(s *Store) ([]Removed, error) { return s.Remove("db.example:443") }, Lookups{Addrs: []string{"db.example:443"}}},
		{"fingerprint", func(s *Store) ([]Removed, error) { return s.Remove(key(t, 1).Fingerprint()) }, Lookups{Keys: [][32]byte{key(t, 1).SPKIHash()}}},
		{"key of an address", func(s *Store) ([]Removed, error) { return s.RemoveKey("db.example:443", key(t, 1).Fingerprint()) },
			Lookups{Keys: [][32]byte{key(t, 1).SPKIHash()}, Addrs: []string{"db.example:443"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, d := pinnedHome(t, 10)
			pin := keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 1), "address", "db.example:443"))
			keydirtest.Write(t, filepath.Join(d, "db.json"), pin)
			_, finish := LoadFor(opts, Lookups{})
			finish()
			h5 := filepath.Join(d, "h5.json")
			before, err := os.Stat(h5)
			if err != nil {
				t.Fatal(err)
			}
			keydirtest.WriteInPlace(t, h5, pin)
			// The mtime put back as it was (touch -d): the ctime, which
			// no user can set, still tells.
			if err := os.Chtimes(h5, before.ModTime(), before.ModTime()); err != nil {
				t.Fatal(err)
			}

			// The pin the index names goes first, before the proof
			// (enforce first); the copy in h5.json, which only the proof
			// finds, after it.
			proofs := 0
			removeBeforeProof = func() {
				proofs++
				if _, err := os.Lstat(filepath.Join(d, "db.json")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("before the proof, db.json (its only pin removed) is still there: %v", err)
				}
				if dec := Load(opts).Decide("db.example:443", key(t, 1).SPKIHash()); dec.Verdict != Pinned {
					t.Errorf("before the proof: %v, want pinned still, by h5.json (the copy written in place)", dec.Verdict)
				}
			}
			t.Cleanup(func() { removeBeforeProof = nil })
			s, finish := LoadFor(opts, tc.lookup)
			removed, err := tc.remove(s)
			finish()
			if err != nil || proofs != 1 {
				t.Fatalf("%v (%d proofs)", err, proofs)
			}
			if len(removed) != 2 || removed[0].File != filepath.Join(d, "db.json") || removed[1].File != h5 {
				t.Errorf("removed %v, want db.json's pin, then h5.json's", removed)
			}
			if d := Load(opts).Decide("db.example:443", key(t, 1).SPKIHash()); d.Verdict == Pinned {
				t.Errorf("the key is still pinned for db.example:443 after the removal (the copy written in place into h5.json)")
			}
		})
	}
}

// A pin is checked against the pins as they are when it is written, in a
// store LoadFor narrowed as in a full one. trust-host loads for the
// address, connects and asks the user; meanwhile another writer pins a
// key for the address in a file of another name (a key file copied into
// trusted_hosts.d, config management, a next key learned by a keytool
// proxy of the home). That file is in no index yet; the directory's stamp
// says it changed. The user's yes for another key must then be the
// changed-key refusal, with nothing written — as a full store's Add,
// which reads the directory again, refuses it. Before, the narrowed store
// read its own files again only, found the address unpinned, and pinned
// the second key beside the first: both admitted, the user never told
// that the address was pinned (found by review).
func TestLoadForAddSeesAPinWrittenMeanwhile(t *testing.T) {
	old := keydir.IndexMinFiles
	keydir.IndexMinFiles = 0
	t.Cleanup(func() { keydir.IndexMinFiles = old })
	for _, loaded := range []string{"full", "narrowed"} {
		t.Run(loaded, func(t *testing.T) {
			opts, d := pinnedHome(t, 10)
			_, finish := LoadFor(opts, Lookups{})
			finish() // the index, built
			s, finish := LoadFor(opts, Lookups{Addrs: []string{"db.example:443"}})
			if loaded == "full" {
				s, finish = Load(opts), func() {}
			}
			presented := key(t, 2)
			if d := s.Decide("db.example:443", presented.SPKIHash()); d.Verdict != Unknown {
				t.Fatalf("before: %v, want unknown", d.Verdict)
			}
			keydirtest.Write(t, filepath.Join(d, "db-primary.json"),
				keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 1), "address", "db.example:443")))
			file, err := s.AddKey("db.example:443", presented.PublicKey(), AddNew)
			finish()
			var ce *KeyChangedError
			if !errors.As(err, &ce) || len(ce.Want) != 1 || ce.Want[0].Fingerprint != key(t, 1).Fingerprint() {
				t.Fatalf("Add of another key: %q, %v; want *KeyChangedError naming the pin of db-primary.json", file, err)
			}
			if d := Load(opts).Decide("db.example:443", presented.SPKIHash()); d.Verdict != Changed {
				t.Errorf("after: a full store decides %v for the key presented, want changed", d.Verdict)
			}
			// Later narrowed loads read the other writer's file: the
			// command's record did not take it in unseen.
			s, finish = LoadFor(opts, Lookups{Addrs: []string{"db.example:443"}})
			defer finish()
			if d := s.Decide("db.example:443", presented.SPKIHash()); d.Verdict != Changed {
				t.Errorf("the next narrowed load decides %v, want changed", d.Verdict)
			}
		})
	}
}

// An address pinned by a file the index names and by one written in
// place: both go (the first before the proof, the second after), and the
// index is left current — the proof takes the first write in, the
// command's end records the second (review of 9fcc5b4: it was left
// stale).
func TestLoadForRemoveTwoStepsKeepsTheIndexCurrent(t *testing.T) {
	old, oldRacy := keydir.IndexMinFiles, keydir.StampRacy
	keydir.IndexMinFiles, keydir.StampRacy = 0, 0
	t.Cleanup(func() { keydir.IndexMinFiles, keydir.StampRacy = old, oldRacy })
	opts, d := pinnedHome(t, 10)
	pin := keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 1), "address", "db.example:443"))
	keydirtest.Write(t, filepath.Join(d, "db.json"), pin)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	keydirtest.WriteInPlace(t, filepath.Join(d, "h5.json"), pin)
	s, finish := LoadFor(opts, Lookups{Addrs: []string{"db.example:443"}})
	removed, err := s.Remove("db.example:443")
	finish()
	if err != nil || len(removed) != 2 {
		t.Fatalf("Remove: %v, %v", removed, err)
	}
	if keydirtest.IndexLeftStale(t, opts.Index) {
		t.Error("trust-host --remove left the index stale: the next admin command stats every file")
	}
}

// Off a local file system (keydir.LocalStamps false) the proof reads
// every file, and a removal writes after it: the next command reads only
// what it needs (review of 9fcc5b4: a write before the proof left the
// index unusable, and every command after loaded in full).
func TestLoadForRemoveOffLocalFileSystemsKeepsTheIndex(t *testing.T) {
	old := keydir.IndexMinFiles
	keydir.IndexMinFiles = 0
	t.Cleanup(func() { keydir.IndexMinFiles = old })
	opts, _ := pinnedHome(t, 20)
	_, finish := LoadFor(opts, Lookups{})
	finish()
	oldLocal := keydir.LocalStamps
	keydir.LocalStamps = func(string) bool { return false }
	t.Cleanup(func() { keydir.LocalStamps = oldLocal })
	s, finish := LoadFor(opts, Lookups{Addrs: []string{"h3.example:443"}})
	if _, err := s.Remove("h3.example:443"); err != nil {
		t.Fatal(err)
	}
	finish()
	s, finish = LoadFor(opts, Lookups{Addrs: []string{"h7.example:443"}})
	defer finish()
	if n := len(s.Loader().Snapshot().Files()); n != 1 {
		t.Errorf("the admin command after trust-host --remove read %d files, want 1: the removal left the index unusable", n)
	}
}

// recordStamps has files written moments ago stamped in the index
// (keydir.StampRacy 0) for the test, as authkeys' tests do.
func recordStamps(t *testing.T) {
	old := keydir.StampRacy
	keydir.StampRacy = 0
	t.Cleanup(func() { keydir.StampRacy = old })
}

// pinnedHome is a home whose trusted_hosts.d pins n keys, h0.json to
// h<n-1>.json, each for its address h<i>.example:443; it returns the
// options and the directory.
func pinnedHome(t *testing.T, n int) (Options, string) {
	t.Helper()
	opts := HomeOptions(t.TempDir())
	d := opts.Dirs[0]
	for i := range n {
		keydirtest.Write(t, filepath.Join(d, "h"+strconv.Itoa(i)+".json"),
			keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 100+i), "address", "h"+strconv.Itoa(i)+".example:443")))
	}
	return opts, d
}
