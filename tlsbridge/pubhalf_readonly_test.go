//go:build unix

package tlsbridge

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// readOnlyHomeEnv names the home the child of
// TestRotationCutShortLoadsWhereTheHomeIsNotWritable loads, as a user who
// may not write it.
const readOnlyHomeEnv = "KEYTOOL_TEST_READONLY_HOME"

// TestRotationCutShortLoadsWhereTheHomeIsNotWritable: a server whose user
// may read its key but not write the home (a proxy run as a user of its
// own, with --index-dir; a home on a read-only mount) loads the identity
// of a home whose rotation was cut short before its public half — the
// identity, key.*, is the new key — where the load tried to finish the
// rotation, could not write pub_key.json, and refused the home: the
// server did not start, or, its reload made between rotate's rename and
// its write (a watching server cannot take the lock of the identity's
// writers there, and so does not wait for rotate), kept presenting the
// key rotated away (found by review, 2026-12-05, late). The home is left
// as it is, for a writer's load, or rotate run again, to finish.
func TestRotationCutShortLoadsWhereTheHomeIsNotWritable(t *testing.T) {
	if dir := os.Getenv(readOnlyHomeEnv); dir != "" {
		loadNotWritable(t, dir)
		return
	}
	old, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	dir := crashedRotation(t, old, next, ".json", false)
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
		if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
			f.Close()
			t.Skip("this user may write a directory of mode 0555")
		}
		loadNotWritable(t, dir)
		return
	}
	// Root: the load is made by a child of this test run as uid 65534,
	// whose key files are its own, in a home of root's.
	for _, name := range []string{"key.json", "key.old.20261205T000000Z.json"} {
		if err := os.Chown(filepath.Join(dir, name), 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(dir), "tlsbridge.test")
	copyFile(t, exe, bin)
	cmd := exec.Command(bin, "-test.run=^TestRotationCutShortLoadsWhereTheHomeIsNotWritable$", "-test.count=1")
	cmd.Env = append(os.Environ(), readOnlyHomeEnv+"="+dir, "HOME="+filepath.Dir(dir))
	cmd.Dir = filepath.Dir(dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Skipf("cannot run the load as uid 65534 (a noexec %s?): %v", os.TempDir(), err)
	}
	if err != nil {
		t.Fatalf("the load as uid 65534: %v\n%s", err, out)
	}
	homeHolds(t, dir, "key.json key.old.20261205T000000Z.json pub_key.json pub_key.next.json", nil)
}

// loadNotWritable loads the home dir, which this user may not write, and
// fails unless the identity loads: key.json, the rotation's next key.
func loadNotWritable(t *testing.T, dir string) {
	t.Helper()
	id, err := LoadHomeIdentity(dir, CertOptions{})
	if err != nil {
		t.Fatalf("LoadHomeIdentity of a home this user may not write, its rotation cut short: %v", err)
	}
	want, err := ReadHomeKey(dir, filepath.Join(dir, "key.json"))
	if err != nil || !id.Key.Equal(want) {
		t.Fatalf("loaded %s (%v), want key.json's key", id.Key.Fingerprint(), err)
	}
}

// copyFile copies the file from to to, executable (the test binary, for
// another user to run).
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}
