package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestAuthorizeRemoveSaysWhatWentBeforeAFailure: authorize --remove
// takes the copy the admin index names before it proves the index
// complete (enforce first); where the proof then finds a copy it cannot
// take out (an OpenSSH file appended to in place, which keytool does
// not rewrite), the command says what it removed, then the error, and
// exits 1.
func TestAuthorizeRemoveSaysWhatWentBeforeAFailure(t *testing.T) {
	indexSmallHomes(t)
	dir := t.TempDir()
	h := filepath.Join(dir, "home")
	mkHome(t, h) // commands that write refuse a home that is not there
	var keys []*jwk.Key
	for i := range 4 {
		file := filepath.Join(dir, fmt.Sprintf("k%d.json", i))
		keys = append(keys, writePublicKey(t, file, nil))
		if _, stderr, code := runKeytool(t, "", "-H", h, "authorize", "--name", fmt.Sprintf("k%d", i), file); code != 0 {
			t.Fatalf("authorize k%d: exit %d\n%s", i, code, stderr)
		}
		if i == 0 {
			keydirtest.Write(t, filepath.Join(h, "authorized_keys.d", "ops.pub"), keydirtest.SSH(t, keys[0]))
		}
	}
	if _, err := os.Stat(filepath.Join(h, ".index")); err != nil {
		t.Fatalf("no admin index: %v", err)
	}
	keydirtest.WriteInPlace(t, filepath.Join(h, "authorized_keys.d", "ops.pub"), keydirtest.SSH(t, keys[0], keys[2]))
	fp := keys[2].Fingerprint()
	stdout, stderr, code := runKeytool(t, "", "-H", h, "authorize", "--remove", fp)
	if code != 1 || !strings.HasPrefix(stdout, `Removed "k2": `+fp+" ("+filepath.Join(h, "authorized_keys.d", "k2.json")+" deleted)") || !strings.Contains(stderr, "ops.pub") {
		t.Fatalf("authorize --remove: exit %d, want 1, k2.json's copy said removed and ops.pub's error\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
