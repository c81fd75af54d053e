package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/jwk"
)

// writeRoleKey syncs the home once the role's files of other formats are
// gone: back after a power loss, key.json beside the new key.pem would be
// a home of two identities, which loads nowhere.
func TestWriteRoleKeyRemovalsAreDurable(t *testing.T) {
	dir := t.TempDir()
	old, k := mustKey(t), mustKey(t)
	json, pem := filepath.Join(dir, "key.json"), filepath.Join(dir, "key.pem")
	if err := jwk.WritePrivateKeyFile(json, old, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePrivateKeyFile(pem, old, jwk.PEM, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	synced := false
	prev := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = prev })
	atomicfile.SyncDir = func(d string) error {
		if _, err := os.Lstat(json); d == dir && os.IsNotExist(err) {
			synced = true
		}
		return prev(d)
	}
	if err := writeRoleKey(pem, []string{json}, true, k, jwk.PEM, true); err != nil {
		t.Fatal(err)
	}
	if !synced {
		t.Error("key.json removed, the home not synced after")
	}
}

func mustKey(t *testing.T) *jwk.Key {
	t.Helper()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
