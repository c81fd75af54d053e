package knownhosts

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// A real libtrust key set (testdata/docker/libtrust-known-hosts.json,
// written by libtrust's AddKeySetFile) whose last key has no "hosts": the
// other three are pinned, the bad one is a problem naming keys[3], and —
// skipped trust never widens trust — an address no loaded pin names is
// still refused (SkippedFilesError), never unknown.
func TestLibtrustSetWithAKeyWithoutHosts(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "docker", "libtrust-known-hosts.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := jwk.Parse(data)
	if err != nil || len(keys) != 4 {
		t.Fatalf("%d keys, %v", len(keys), err)
	}
	if _, ok := keys[3].Attrs[jwk.AttrHosts]; ok {
		t.Fatal("the fixture's last key has hosts")
	}
	home := t.TempDir()
	path := filepath.Join(home, "trusted_hosts.json")
	keydirtest.Write(t, path, data)
	s := Load(HomeOptions(home))

	if got := len(s.Entries()); got != 3 {
		t.Fatalf("%d pins, want 3", got)
	}
	for addr, k := range map[string]*jwk.Key{
		"docker1.example.com:2376": keys[0],
		"10.0.0.5:2376":            keys[0],
		"node.swarm.example.com:1": keys[1],
		"[2001:db8::1]:2376":       keys[2],
	} {
		if err := s.Check(addr, k); err != nil {
			t.Errorf("Check(%s): %v", addr, err)
		}
	}
	p := s.Problems()
	if len(p) != 1 || p[0].Path != path || p[0].Member != "keys[3].address" || !p[0].Entry {
		t.Fatalf("problems %+v, want one naming keys[3].address of %s", p, path)
	}

	var skipped *SkippedFilesError
	for _, k := range []*jwk.Key{keys[3], keydirtest.Key(t, 1)} {
		if err := s.Check("unknown.example:2376", k); !errors.As(err, &skipped) || skipped.Problems[0].Member != "keys[3].address" {
			t.Errorf("Check of an unpinned address with %s: %v, want *SkippedFilesError", k.Fingerprint(), err)
		}
	}
	// A pinned address still tells a changed key.
	var changed *KeyChangedError
	if err := s.Check("docker1.example.com:2376", keys[3]); !errors.As(err, &changed) {
		t.Errorf("another key at a pinned address: %v, want *KeyChangedError", err)
	}
	// No pin is written while the entry is skipped.
	if _, err := s.Add("unknown.example:2376", keydirtest.Key(t, 1)); !errors.As(err, &skipped) {
		t.Errorf("Add: %v, want *SkippedFilesError", err)
	}
}
