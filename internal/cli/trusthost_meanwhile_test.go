package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// TestTrustHostSeesAPinWrittenWhileItAsks: in a home large enough for the
// admin index (trust-host then reads only the files the index names for
// the address), a pin of the address written while the first-use question
// waits for the user — a key file copied into trusted_hosts.d under a
// name of its own, as config management does — makes the answer yes the
// changed-key refusal, exit 1, nothing written: as in a small home, where
// trust-host reads the whole directory again before it writes. Before, it
// read its own few files again, found the address unpinned, and pinned
// the server's key beside the other: two keys admitted, and the user never
// told that the address was pinned (found by review).
func TestTrustHostSeesAPinWrittenWhileItAsks(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	for _, pins := range []int{0, keydir.IndexMinFiles} {
		t.Run(fmt.Sprintf("%d pins", pins), func(t *testing.T) { trustHostSeesAPinWrittenWhileItAsks(t, pins) })
	}
}

func trustHostSeesAPinWrittenWhileItAsks(t *testing.T, pins int) {
	addr, presented := keytoolServer(t)
	home := newClientHome(t)
	dir := filepath.Join(home, "trusted_hosts.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fleetFile := filepath.Join(t.TempDir(), "fleet.json")
	fleet := writePublicKey(t, fleetFile, nil)
	for i := range pins {
		pin := fleet.PublicKey()
		pin.Attrs = jwk.Attributes{}
		pin.Attrs.SetList(jwk.AttrAddress, []string{fmt.Sprintf("h%d.example:443", i)})
		if err := jwk.WritePublicKeyFile(filepath.Join(dir, fmt.Sprintf("h%d.json", i)), pin, jwk.JWK, jwk.CreateNew); err != nil {
			t.Fatal(err)
		}
	}
	if _, e, code := keytoolIn(t, home, "trust-host", "seed.example:443", "--key", fleetFile); code != 0 {
		t.Fatalf("trust-host --key: exit %d\n%s", code, e)
	}
	if _, err := os.Stat(filepath.Join(home, ".index")); (err == nil) != (pins >= keydir.IndexMinFiles) {
		t.Fatalf("admin index with %d pins: %v", pins, err)
	}

	var admins *jwk.Key
	copyPin := func() {
		admins = writePublicKey(t, filepath.Join(dir, "db-primary.json"), map[string]string{jwk.AttrAddress: addr})
	}
	screen := runInTmuxThen(t, []string{"keytool", "-H", home, "trust-host", addr},
		"Are you sure you want to continue connecting (yes/no/[fingerprint])? ", copyPin, []string{"yes"})
	for _, want := range []string{"The host key of " + addr + " has changed!", presented.Fingerprint(), admins.Fingerprint(), "EXIT=1"} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q", want)
		}
	}
	if k := pinnedKey(t, home, addr); k != nil {
		t.Errorf("the server's key %s was pinned beside the copied pin of %s:\n%s", k.Fingerprint(), admins.Fingerprint(), screen)
	}
}
