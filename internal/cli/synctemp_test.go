package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/knownhosts"
)

// TestSyncRemovesWhatAKilledSyncLeft: the temporary files a sync killed
// mid-write leaves (kill -9, a power cut) — of a .d file it was placing,
// of its manifest — and the scratch directory of sharedFiles are removed
// by the next sync, under its lock: named as only sync's writes name
// them (syncTag), owned by the user, and no sync can be writing them.
// What sync cannot prove its own is left: an untagged temporary file
// (keytool authorize's or revoke's, writing the directory now under
// their own lock), a link, a directory of a temporary file's name. The
// home's stores skip every one of them meanwhile. Before, sync's
// temporary files were named as every keytool writer's, and each one a
// kill left stayed for good. (Found by review, 2026-12-05, third pass.)
func TestSyncRemovesWhatAKilledSyncLeft(t *testing.T) {
	dir := t.TempDir()
	s, _, errOut := testSyncer(t, dir)
	keys := syncKeys(t, 2)
	entries := []StoreEntry{authorized("alice.json", keys[0]), {Kind: StoreRevoked, Name: "bob.json", Value: keys[1]}}
	if _, err := s.mirror(entries, syncAt{}); err != nil {
		t.Fatal(err)
	}
	h := string(s.home)
	put := func(rel string, data []byte) string {
		p := filepath.Join(h, rel)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// What a killed sync leaves: half a key, a whole one (filled, not yet
	// placed), half a manifest, a scratch directory with its names.
	left := []string{
		put("authorized_keys.d/.carol.json.2401.keytool-sync.tmp", keys[1][:len(keys[1])/2]),
		put("revoked_keys.d/.bob.json.77.keytool-sync.tmp", keys[1]),
		put("trusted_hosts.d/.db.json.1.keytool-sync.tmp", nil),
		put("..keytool-sync.json.3141592.keytool-sync.tmp", []byte(`{"store":`)),
	}
	scratch := filepath.Join(h, "authorized_keys.d", ".keytool-sync-names-981")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	put("authorized_keys.d/.keytool-sync-names-981/alice.json", nil)
	left = append(left, scratch)
	// What is not provably sync's.
	kept := []string{
		put("authorized_keys.d/.carol.json.2401.tmp", keys[1]), // authorize's, maybe live
		put("authorized_keys.d/.keytool-sync.json.5.tmp", nil), // authorize --name keytool-sync's
		put("authorized_keys.d/.carol.json.x.keytool-sync.tmp", nil),
	}
	target := put("authorized_keys.d/.target", keys[1])
	link := filepath.Join(h, "authorized_keys.d", ".dave.json.9.keytool-sync.tmp")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	asDir := filepath.Join(h, "revoked_keys.d", ".erin.json.9.keytool-sync.tmp")
	if err := os.Mkdir(asDir, 0o700); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, target, link, asDir)

	// The home's stores skip them all, as the files sync placed are read.
	a := authkeys.Load(authkeys.HomeOptions(h))
	if len(a.Problems()) != 0 || len(a.Entries()) != 1 || len(a.Revoked()) != 1 {
		t.Fatalf("the authorized keys' store beside the temporary files: problems %v, %d entries, %d revoked; want none, 1, 1", a.Problems(), len(a.Entries()), len(a.Revoked()))
	}
	if k := knownhosts.Load(knownhosts.HomeOptions(h)); len(k.Entries()) != 0 || len(k.Revoked()) != 1 {
		t.Fatalf("the pins' store beside the temporary files: %d pins, %d revoked; want 0, 1", len(k.Entries()), len(k.Revoked()))
	}

	errOut.Reset()
	if _, err := s.mirror(entries, syncAt{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range left {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s, left by a killed sync, is still there (%v)", p, err)
		}
		if !strings.Contains(errOut.String(), "removed "+p+", left by a sync cut short") {
			t.Errorf("its removal is not said:\n%s", errOut)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s, not provably sync's, was removed (%v)", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(h, "authorized_keys.d", "alice.json")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("alice's file: %v", err)
	}
	m, err := s.readManifest()
	if err != nil || len(m.Files) != 2 || m.Files["authorized_keys.d/alice.json"] != contentSum(keys[0]) {
		t.Fatalf("the manifest: %v, %v", m.Files, err)
	}
}
