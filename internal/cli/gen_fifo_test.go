package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A FIFO where gen looks for an identity — the home's key.json, or the
// file -i names — is refused like any file there, and naming the key it
// holds (describeKeyFile) does not wait for a writer that never comes:
// the one bounded reader opens it without blocking and refuses it, so the
// refusal names the file alone.
func TestGenRefusesFIFOIdentity(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	homeKey, named := filepath.Join(home, "key.json"), filepath.Join(t.TempDir(), "id.json")
	keydirtest.Mkfifo(t, homeKey, 0o600)
	keydirtest.Mkfifo(t, named, 0o600)
	for _, tc := range []struct {
		args []string
		fifo string
	}{{[]string{"gen"}, homeKey}, {[]string{"-i", named, "gen"}, named}} {
		_, stderr, code := keytoolIn(t, home, tc.args...) // a hang times out, failing the test
		if code != 1 || !strings.Contains(stderr, "an identity already exists: "+tc.fifo+"; keep it") {
			t.Errorf("keytool %s with a FIFO at %s: exit %d, stderr %q; want exit 1 naming it as the identity",
				strings.Join(tc.args, " "), tc.fifo, code, stderr)
		}
	}
}
