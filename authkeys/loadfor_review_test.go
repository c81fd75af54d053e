package authkeys

import (
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// A command's end records in the index only what it read as it still is.
// Command C loaded pair.json (k3 in it) and re-read it after an in-place
// edit dropped k3; k3 was then written back in place, and another
// command's removal check (D) stamped pair.json with k3 in it without
// writing a new head (the directory had not changed). C's end, once the
// directory changed, appended a log entry whose "gone" held (k3,
// pair.json): applied over D's shards, it hid the copy D's stamp vouches
// for, and a removal of k3 left it authorized (found by review). Now C
// sees pair.json is no longer as it read it and records nothing.
func TestFinishRecordsOnlyWhatItReadAsItIs(t *testing.T) {
	opts, d := stampedHome(t, 30)
	k := key(t, 3)
	pair := filepath.Join(d, "pair.json")
	keydirtest.Replace(t, pair, keydirtest.JWK(t, k, key(t, 41)))
	// Index and stamps current, pair.json included.
	s, finish := LoadFor(opts, Lookups{Names: []string{"nosuch"}})
	if _, err := s.Remove("nosuch"); !errors.As(err, new(*NotFoundError)) {
		t.Fatal(err)
	}
	finish()

	// C: a command that looks up k3 (e.g. trust-host/authorize waiting).
	c, finishC := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}})
	if !keyFiles(c, k)["pair.json"] {
		t.Fatal("setup: C did not load pair.json")
	}
	keydirtest.WriteInPlace(t, pair, keydirtest.JWK(t, key(t, 41)))    // k3 dropped in place
	c.Loader().Reload()                                                // C re-reads its files (as Extend does)
	keydirtest.WriteInPlace(t, pair, keydirtest.JWK(t, k, key(t, 41))) // k3 back in place

	// D: another command's removal check stamps pair.json (with k3).
	s, finish = LoadFor(opts, Lookups{Names: []string{"nosuch"}})
	if _, err := s.Remove("nosuch"); !errors.As(err, new(*NotFoundError)) {
		t.Fatal(err)
	}
	finish()

	// The directory changes (C's own write, or anyone's), then C ends.
	keydirtest.Put(t, filepath.Join(d, "z.json"), keydirtest.JWK(t, key(t, 42)))
	finishC()

	fp, _ := jwk.ParseFingerprint(k.Fingerprint())
	s, finish = LoadFor(opts, Lookups{Fingerprints: []jwk.Fingerprint{fp}})
	removed, err := s.Remove(k.Fingerprint())
	finish()
	if err != nil {
		t.Fatal(err)
	}
	if e, err := Load(opts).LookupKey(k, netip.Addr{}); err == nil {
		t.Fatalf("Remove by fingerprint removed %d copies; the key is still authorized in %s", len(removed), e.File)
	}
}
