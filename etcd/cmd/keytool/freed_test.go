package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreMirrorNameFreedDuringTheCommand: an rm -r of HOME/.store-mirror
// under way while a command runs has removed bob's entry file (not yet
// the lock file) before the command looked for the name bob: found free,
// authorize --name bob wrote carol's key there as a new entry, and the
// write-back, comparing bob's revision at the mirror's (unchanged), wrote
// it over bob's authorization in etcd. The command refuses
// (MirrorNotWholeError, naming the entry): nothing written, no manifest
// kept, and the next command, the mirror rebuilt, finds the name taken.
func TestStoreMirrorNameFreedDuringTheCommand(t *testing.T) {
	f := newMirrorFixture(t, "/freed", "alice", "bob", "carol")
	store := "etcdrm://" + f.addr + "/freed"
	authorize := func(rm string, args ...string) (string, error) {
		cmd := exec.Command(f.bin, append([]string{"-H", f.home, "authorize", "--store", store}, args...)...)
		cmd.Env = append(os.Environ(), "KEYTOOL_RM_GLOB="+rm)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, who := range []string{"alice", "bob"} {
		if out, err := authorize("", "--name", who, f.pub[who]); err != nil {
			t.Fatalf("authorize %s: %v\n%s", who, err, out)
		}
	}
	bob := f.get(t, "authorized_keys/bob.json")
	bobFile := filepath.Join(f.home, ".store-mirror", "*", "authorized_keys.d", "bob.json")
	out, err := authorize(bobFile, "--name", "bob", f.pub["carol"])
	if err == nil || !strings.Contains(out, "authorized_keys/bob.json") || !strings.Contains(out, "run the command again") {
		t.Fatalf("authorize carol as bob, bob's file removed from the mirror during the command: %v\n%s", err, out)
	}
	if got := f.get(t, "authorized_keys/bob.json"); got != bob {
		t.Fatalf("bob's entry in etcd was written over: %q", got)
	}
	if manifests, _ := filepath.Glob(filepath.Join(f.home, ".store-mirror", "*", "manifest")); len(manifests) != 0 {
		t.Fatalf("a manifest was kept: %v", manifests)
	}
	if out, err := authorize("", "--name", "bob", f.pub["carol"]); err == nil || !strings.Contains(out, "already taken") {
		t.Fatalf("authorize carol as bob again: %v\n%s", err, out)
	}
}
