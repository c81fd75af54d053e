package cli

import (
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/tlsbridge"
)

// TestGenForceOtherFormatKilled: gen --force -f pem replaces key.json by
// key.pem, and gen --next --force -f pem key.next.json by key.next.pem.
// Killed at any step of its first write, the home still loads: one
// identity, and at most one next key. Before (found by review,
// 2026-12-05): killed once the new file was placed, before the old one
// was removed, the home held both — "several identities", or two next
// keys — which no command, restart or reload could load until one was
// removed by hand.
func TestGenForceOtherFormatKilled(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup [][]string
		args  []string
	}{
		{"gen --force -f pem", [][]string{{"gen"}}, []string{"gen", "--force", "-f", "pem"}},
		{"gen --next --force -f pem", [][]string{{"gen"}, {"gen", "--next"}}, []string{"gen", "--next", "--force", "-f", "pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, step := range []string{atomicfile.StepCreated, atomicfile.StepFilled, atomicfile.StepPlaced} {
				home := filepath.Join(t.TempDir(), "home")
				for _, s := range tc.setup {
					keytoolOK(t, append([]string{"-H", home}, s...)...)
				}
				held, out := holdAndKill(t, "1:"+step, append([]string{"-H", home}, tc.args...)...)
				if held == "" {
					t.Fatalf("not held at %s: %s", step, out)
				}
				// Killed once the new key is placed, before its public
				// half is written, the home has no public half of the key
				// at all: gen removes the old one before it writes the key.
				// Before, pub_key.json was still the replaced key's, which
				// no file of the home keeps, and the load refused the home
				// (tlsbridge.PublicKeyError) until the fix it gave was run.
				_, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{})
				if err != nil {
					t.Errorf("killed at %s: the home does not load: %v", step, err)
				}
			}
		})
	}
}
