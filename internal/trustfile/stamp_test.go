package trustfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStampSplitJoin checks that a stamp split in two is the same stamp
// joined again, and that a change of mode, which only the shared part
// holds, is still a different stamp: a loader keeping the parts apart
// must tell exactly the changes the whole stamp tells.
func TestStampSplitJoin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.json")
	if err := os.WriteFile(path, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	s := StampOf(fi)
	f, d := s.Split()
	if f.Join(d) != s {
		t.Fatalf("Join(Split(%v)) = %v", s, f.Join(d))
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err = os.Stat(path); err != nil {
		t.Fatal(err)
	}
	f2, d2 := StampOf(fi).Split()
	if d2 == d {
		t.Fatal("a chmod left the shared part of the stamp unchanged")
	}
	if f.Join(d2) == s {
		t.Fatal("the file's own part joined with another mode gave the old stamp")
	}
	if f2.Join(d2) != StampOf(fi) {
		t.Fatal("Join(Split) after chmod is not the stamp")
	}
}
