package tlsbridge

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/jwk"
)

// RotateHome syncs the home once the old public halves are gone: back
// after a power loss, pub_key.json beside the new identity's
// pub_key.pem would stop the home from loading.
func TestRotateHomeRemovalsAreDurable(t *testing.T) {
	dir := rotationHome(t, mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.Ed25519), ".pem")
	gone := []string{filepath.Join(dir, "pub_key.json"), filepath.Join(dir, "pub_key.next.pem")}
	syncedGone := false
	prev := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = prev })
	atomicfile.SyncDir = func(d string) error {
		if d == dir {
			all := true
			for _, f := range gone {
				if _, err := os.Lstat(f); err == nil {
					all = false
				}
			}
			syncedGone = syncedGone || all
		}
		return prev(d)
	}
	if _, err := RotateHome(dir); err != nil {
		t.Fatal(err)
	}
	if !syncedGone {
		t.Errorf("the home was not synced once %v were removed", gone)
	}
}

// A rotation cut short before its public halves, finished by the next
// load (finishPublic), syncs the home once pub_key.next.json is gone.
func TestFinishedRotationRemovalsAreDurable(t *testing.T) {
	old, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	dir := crashedRotation(t, old, next, ".json", false)
	gone := filepath.Join(dir, "pub_key.next.json")
	if _, err := os.Lstat(gone); err != nil {
		t.Fatalf("the rotation cut short has no %s: %v", gone, err)
	}
	synced := false
	prev := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = prev })
	atomicfile.SyncDir = func(d string) error {
		if _, err := os.Lstat(gone); d == dir && os.IsNotExist(err) {
			synced = true
		}
		return prev(d)
	}
	if _, err := LoadHomeIdentity(dir, CertOptions{}); err != nil {
		t.Fatal(err)
	}
	if !synced {
		t.Errorf("%s removed, the home not synced after", gone)
	}
}
