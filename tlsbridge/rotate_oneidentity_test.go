package tlsbridge

import (
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// TestRotateHomeOneIdentityAtEveryMoment: a rotation to a next key of
// another format (key.next.pem beside key.json) holds one identity at
// every moment, as with one format: the next key takes the identity's
// name in one rename, then the name of its format in another. Before
// (found by review, 2026-12-05): it was renamed to key.pem beside
// key.json, which was removed after the check of the move — in between
// the home held two identities, and a rotate killed there (or a machine
// lost) left a home that no command, restart or reload could load until
// one was removed by hand. The test looks at the home at each read of a
// key the rotation makes, the check of the move among them.
func TestRotateHomeOneIdentityAtEveryMoment(t *testing.T) {
	old, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	dir := rotationHome(t, old, next, ".pem")
	reads := 0
	replaceOnRead(t, func(path string) {
		reads++
		if _, err := jwk.FindIdentity(dir); err != nil {
			t.Errorf("at the read of %s: %v", filepath.Base(path), err)
		}
	})
	r, err := RotateHome(dir)
	if err != nil || r.KeyFile != filepath.Join(dir, "key.pem") {
		t.Fatalf("RotateHome: %+v, %v; want the identity in key.pem", r, err)
	}
	if reads < 4 {
		t.Fatalf("%d reads: the rotation checked less than it does", reads)
	}
	homeHolds(t, dir, "key.old."+r.OldFile[len(filepath.Join(dir, "key.old.")):]+" key.pem pub_key.pem",
		map[string]*jwk.Key{"key.pem": next})
	if id, err := LoadHomeIdentity(dir, CertOptions{}); err != nil || !id.Key.Equal(next) {
		t.Fatalf("after: %v", err)
	}
}
