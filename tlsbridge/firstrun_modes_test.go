package tlsbridge

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// TestGenerateOnlyWhereTheRuleReads: LoadOrGenerateHomeIdentity makes a
// first identity only in a home the strict-modes rule reads it from (as
// keytool gen does, TestGenRefusesAHomeTheRuleRefuses in internal/cli): in
// a home that group or others may write, it returns the
// *trustfile.PermissionError naming the home and writes nothing. Before
// (found by review, 2026-12-03): the private key was written there, and
// only reading it back refused the home.
func TestGenerateOnlyWhereTheRuleReads(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o770} {
		home := filepath.Join(t.TempDir(), "home")
		if err := os.Mkdir(home, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(home, mode); err != nil {
			t.Fatal(err)
		}
		var pe *trustfile.PermissionError
		if _, _, err := LoadOrGenerateHomeIdentity(home, jwk.EC256, CertOptions{}); !errors.As(err, &pe) || pe.Path != home {
			t.Errorf("a home of mode %04o: %v, want a *trustfile.PermissionError naming it", mode, err)
		}
		if ents, _ := os.ReadDir(home); len(ents) != 0 {
			t.Errorf("a home of mode %04o: %v written", mode, ents)
		}
	}
}
