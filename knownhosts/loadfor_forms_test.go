package knownhosts

import (
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// A key given in a form the admin index does not keep (ssh-keygen's
// fingerprint, an RFC 7638 thumbprint) and pinned both with a wildcard
// (a file every narrowed load reads) and for an exact address (a file
// only the key's SPKI hash names): Remove takes both copies. The
// narrowed removal found the wildcard's copy, so it did not read the
// whole store, and the exact address stayed pinned (found by review).
func TestLoadForRemoveByAnotherFormTakesEveryCopy(t *testing.T) {
	old, oldRacy := keydir.IndexMinFiles, keydir.StampRacy
	keydir.IndexMinFiles, keydir.StampRacy = 0, 0 // every directory indexed, its files' stamps recorded
	t.Cleanup(func() { keydir.IndexMinFiles, keydir.StampRacy = old, oldRacy })
	k := key(t, 1)
	ssh, ok := k.SSHFingerprint()
	if !ok {
		t.Fatal("the test key has no ssh-keygen fingerprint")
	}
	for _, form := range []string{ssh, k.Thumbprint()} {
		t.Run(form, func(t *testing.T) {
			opts, d := pinnedHome(t, 10)
			keydirtest.Write(t, filepath.Join(d, "wild.json"), keydirtest.JWK(t, keydirtest.WithAttrs(k, "address", "*.wild.example")))
			keydirtest.Write(t, filepath.Join(d, "exact.json"), keydirtest.JWK(t, keydirtest.WithAttrs(k, "address", "web.example:443")))
			_, finish := LoadFor(opts, Lookups{})
			finish()

			fp, err := jwk.ParseFingerprint(form)
			if err != nil {
				t.Fatal(err)
			}
			s, finish := LoadFor(opts, Lookups{Addrs: []string{form}, Fingerprints: []jwk.Fingerprint{fp}})
			_, err = s.Remove(form)
			finish()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range Load(opts).Entries() {
				if e.SPKIHash == k.SPKIHash() {
					t.Errorf("Remove(%s) left the key pinned in %s", form, e.File)
				}
			}
		})
	}
}
