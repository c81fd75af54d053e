//go:build unix

package jwk

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWrittenFileModesUnderUmask checks the promise of docs/security.md,
// "private keys are written 0600, public keys 0644", whatever the umask of
// the writing process: exactly 0600 and 0644 under umask 000, 022, 027 and
// 077, for both formats, when creating a file and when replacing one that
// had another mode. (TestWriteFiles checks the modes under the umask the
// tests happen to run with, where a writer that let the umask decide would
// pass.)
//
// The umask is per process, so the test is not parallel, and it restores
// the umask it found.
func TestWrittenFileModesUnderUmask(t *testing.T) {
	old := syscall.Umask(0o022)
	syscall.Umask(old)
	k := withAttrs(testKey(t, EC256), nil)
	for _, umask := range []int{0o000, 0o022, 0o027, 0o077} {
		for _, f := range []Format{JWK, PEM} {
			t.Run(fmt.Sprintf("umask %03o/%s", umask, f), func(t *testing.T) {
				dir := t.TempDir()
				priv := filepath.Join(dir, "key"+f.Ext())
				pub := filepath.Join(dir, "pub_key"+f.Ext())
				syscall.Umask(umask)
				defer syscall.Umask(old)
				check := func(when string) {
					t.Helper()
					if m := fileMode(t, priv); m != 0o600 {
						t.Errorf("%s: private file mode %04o, want 0600", when, m)
					}
					if m := fileMode(t, pub); m != 0o644 {
						t.Errorf("%s: public file mode %04o, want 0644", when, m)
					}
				}
				if err := WritePrivateKeyFile(priv, k, f, CreateNew); err != nil {
					t.Fatal(err)
				}
				if err := WritePublicKeyFile(pub, k, f, CreateNew); err != nil {
					t.Fatal(err)
				}
				check("created")
				// Replacing files of other modes gives the same modes,
				// not the old files' ones.
				if err := os.Chmod(priv, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(pub, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := WritePrivateKeyFile(priv, k, f, Overwrite); err != nil {
					t.Fatal(err)
				}
				if err := WritePublicKeyFile(pub, k, f, Overwrite); err != nil {
					t.Fatal(err)
				}
				check("replaced")
			})
		}
	}
}
