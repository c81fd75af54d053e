package knownhosts

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// Docker's engine-keys proposal calls the client's file of host keys
// allowed_hosts.json: a home holding only that file pins its hosts, as
// trusted_hosts.json would.
func TestAllowedHostsJSONIsATrustedHostsFile(t *testing.T) {
	home := t.TempDir()
	keydirtest.Write(t, filepath.Join(home, "allowed_hosts.json"), keydirtest.JWK(t, pinned(t, 1, "docker.example:2376"), pinned(t, 2, "other.example")))
	s := Load(HomeOptions(home))
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	if err := s.Check("docker.example:2376", key(t, 1)); err != nil {
		t.Fatalf("the key pinned in allowed_hosts.json: %v", err)
	}
	var changed *KeyChangedError
	if err := s.Check("docker.example:2376", key(t, 3)); !errors.As(err, &changed) || changed.Want[0].File != filepath.Join(home, "allowed_hosts.json") {
		t.Fatalf("another key at the pinned address: %v, want *KeyChangedError naming allowed_hosts.json", err)
	}
	if got := len(s.Entries()); got != 2 {
		t.Fatalf("%d entries, want 2", got)
	}
}
