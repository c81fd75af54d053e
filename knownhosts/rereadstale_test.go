package knownhosts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A file out of place when the first step read it again for a
// thumbprint, back as loaded by the proof (same content: same number and
// generation), must be read again: the pin is in force and the removal
// must take it, not say "not found".
func TestRemoveByThumbprintAfterAFileCameBackUnchanged(t *testing.T) {
	recordStamps(t)
	opts, d := pinnedHome(t, 3)
	k := key(t, 1)
	ops := filepath.Join(d, "ops.json")
	away := filepath.Join(t.TempDir(), "ops.json")
	keydirtest.Write(t, ops, keydirtest.JWK(t, pinnedFor(t, 1, "k1.example:443")))
	s := Load(opts)
	if err := os.Rename(ops, away); err != nil {
		t.Fatal(err)
	}
	removeBeforeProof = func() {
		if err := os.Rename(away, ops); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { removeBeforeProof = nil })
	got := s.RemoveAll([]string{k.Thumbprint()})
	for _, p := range pinnedState(opts) {
		if strings.Contains(p, k.Fingerprint()) {
			t.Errorf("RemoveAll said %v (removed %d), and %s still pins the key", got[0].Err, len(got[0].Removed), p)
		}
	}
}

// keepFailed must not take off a file refused at its rewrite (and left
// out of the snapshot as a Problem) that still pins the key.
func TestRemoveAllKeepsTheRefusalOfAFileLeftOutAsAProblem(t *testing.T) {
	recordStamps(t)
	opts, d := pinnedHome(t, 3)
	k := key(t, 1)
	ops := filepath.Join(d, "ops.json")
	keydirtest.Write(t, ops, keydirtest.JWK(t, pinnedFor(t, 1, "k1.example:443")))
	s := Load(opts)
	if err := os.Chmod(ops, 0o666); err != nil {
		t.Fatal(err)
	}
	got := s.RemoveAll([]string{k.Fingerprint()})
	if got[0].Err == nil || errors.As(got[0].Err, new(*NotFoundError)) {
		t.Errorf("RemoveAll: %v; want ops.json's refusal: it still pins the key", got[0].Err)
	}
}
