//go:build unix

package jwk

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/atomicfile"
)

// Writing a private key removes the temporaries that killed writes of the
// same file left (atomicfile.RemoveStale; its test has the cases kept):
// each holds a private key, maybe one rotated away since. A public key's
// write does not read its directory (authorized_keys.d may be large).
func TestWritePrivateKeyRemovesStaleTemporaries(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-atomicfile.StaleAge - time.Minute)
	stale := func(name string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("an old private key"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		return p
	}
	priv, pub := stale(".key.json.123.tmp"), stale(".pub.json.123.tmp")
	k := testKey(t, EC256)
	if err := WritePrivateKeyFile(filepath.Join(dir, "key.json"), k, JWK, CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := WritePublicKeyFile(filepath.Join(dir, "pub.json"), k, JWK, CreateNew); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(priv); !os.IsNotExist(err) {
		t.Errorf("the private key's stale temporary is still there (%v)", err)
	}
	if _, err := os.Lstat(pub); err != nil {
		t.Errorf("the public key's write removed a temporary: %v", err)
	}
}
