package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
)

// TestRevokeRemoveByNameIndexed: revoke --remove NAME finds the revoked
// key of that name in a home large enough for the admin index (which
// narrows the files read to the name's and its key's), and a name whose
// key is not revoked lifts nothing.
func TestRevokeRemoveByNameIndexed(t *testing.T) {
	indexSmallHomes(t)
	dir := t.TempDir()
	h := filepath.Join(dir, "home")
	mkHome(t, h) // commands that write refuse a home that is not there
	var fps []string
	for i := range 6 {
		file := filepath.Join(dir, fmt.Sprintf("k%d.json", i))
		fps = append(fps, writePublicKey(t, file, nil).Fingerprint())
		if _, stderr, code := runKeytool(t, "", "-H", h, "authorize", "--name", fmt.Sprintf("k%d", i), file); code != 0 {
			t.Fatalf("authorize k%d: exit %d\n%s", i, code, stderr)
		}
	}
	if _, stderr, code := runKeytool(t, "", "-H", h, "revoke", filepath.Join(dir, "k2.json")); code != 0 {
		t.Fatalf("revoke k2: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(h, ".index")); err != nil {
		t.Fatalf("no admin index: %v", err)
	}
	stdout, stderr, code := runKeytool(t, "", "-H", h, "revoke", "--remove", "k2")
	if code != 0 || !strings.HasPrefix(stdout, "Lifted the revocation of "+fps[2]+" ") {
		t.Fatalf("revoke --remove k2: exit %d, want %s lifted\nstdout:\n%s\nstderr:\n%s", code, fps[2], stdout, stderr)
	}
	_, stderr, code = runKeytool(t, "", "-H", h, "revoke", "--remove", "k3")
	if code != 1 || !strings.Contains(stderr, `no revoked key was authorized as "k3"`) {
		t.Errorf("revoke --remove k3 (not revoked): exit %d, want 1\nstderr:\n%s", code, stderr)
	}
	stdout, _, _ = runKeytool(t, "", "-H", h, "authorize", "--list")
	if strings.Contains(stdout, "revoked") {
		t.Errorf("a key is still revoked:\n%s", stdout)
	}
}

// TestRevokeSaysItsDirectoryWasNotSynced: a revocation written whose
// directory could not be synced is said to be revoked — it is, readers
// refuse the key — and then, as an error (exit 1), that a power loss may
// undo it, with the advice to check the disk and sync; not "not
// revoked".
func TestRevokeSaysItsDirectoryWasNotSynced(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	mkHome(t, home)
	old := filepath.Join(root, "old.json")
	writePublicKey(t, old, nil)
	keytoolOK(t, "-H", home, "revoke", old) // the directory made
	pub := filepath.Join(root, "new.json")
	k := writePublicKey(t, pub, nil)
	prev := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = prev })
	atomicfile.SyncDir = func(string) error { return errors.New("the disk is gone") }
	var stdout, stderr bytes.Buffer
	code := run([]string{"-H", home, "revoke", pub}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "Revoked "+k.Fingerprint()) ||
		!strings.Contains(stderr.String(), "may not survive a power loss") || strings.Contains(stderr.String(), "not revoked") ||
		!strings.Contains(stderr.String(), "The change is made, and in effect") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant the key said revoked, then the failed sync (exit 1)", code, &stdout, &stderr)
	}
}
