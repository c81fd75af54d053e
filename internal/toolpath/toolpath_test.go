package toolpath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A program outside PATH is found in the directories searched after it;
// one that is nowhere, or not executable, is not.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"daemon": 0o755, "data": 0o644} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", t.TempDir()) // an empty PATH directory: nothing is found there
	if p, err := Find("daemon", dir); err != nil || p != filepath.Join(dir, "daemon") {
		t.Errorf("Find(daemon) = %q, %v", p, err)
	}
	if p, err := Find("data", dir); err == nil {
		t.Errorf("a file that is not executable was found: %s", p)
	}
	if _, err := Find("no-such-program-here", dir); err == nil || !strings.Contains(err.Error(), "/usr/sbin") {
		t.Errorf("err = %v, want one naming where it looked", err)
	}
	t.Setenv("PATH", dir)
	if p, err := Find("daemon"); err != nil || p != filepath.Join(dir, "daemon") {
		t.Errorf("Find(daemon) from PATH = %q, %v", p, err)
	}
}
