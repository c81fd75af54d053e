package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestTag: a tagged write's temporary file is named ".NAME.DIGITS.TAG.tmp",
// which Tag.IsTemp knows and no untagged write's temporary file (nor
// RemoveStale) matches, whatever NAME; and it leaves none once placed.
func TestTag(t *testing.T) {
	const tag = Tag("keytool-sync")
	dir := t.TempDir()
	path := filepath.Join(dir, "alice.json")
	var seen string
	t.Cleanup(func() { Hook = func(string, string) {} })
	Hook = func(step, p string) {
		if step != StepFilled {
			return
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			seen = e.Name()
		}
	}
	if err := tag.Write(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !tag.IsTemp(seen) || isTempOf(seen, "alice.json") {
		t.Fatalf("the temporary file %q: IsTemp %v, an untagged write's %v; want true, false", seen, tag.IsTemp(seen), isTempOf(seen, "alice.json"))
	}
	if err := tag.Create(path, []byte("y"), 0o644); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over a file: %v, want fs.ErrExist", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("the directory holds %d entries, want the file alone", len(entries))
	}
	for name, want := range map[string]bool{
		".alice.json.123.keytool-sync.tmp": true,
		".a.4294967295.keytool-sync.tmp":   true,
		// An untagged write's temporary file, of names a tag cannot tell
		// apart by a prefix: "alice.json.123" and "keytool-sync.json".
		".alice.json.123.tmp":                     false,
		".keytool-sync.json.123.tmp":              false,
		".alice.json.123.keytool-sync.tmp.tmp":    false,
		".alice.json.keytool-sync.tmp":            false,
		"..123.keytool-sync.tmp":                  false,
		".alice.json.0123.keytool-sync.tmp":       false,
		".alice.json.4294967296.keytool-sync.tmp": false,
		"alice.json.123.keytool-sync.tmp":         false,
		".alice.json.123.other.tmp":               false,
	} {
		if got := tag.IsTemp(name); got != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, got, want)
		}
	}
	for _, bad := range []Tag{"", "a.b", "123", "a/b"} {
		if bad.IsTemp(".x.1."+string(bad)+".tmp") || bad.Write(filepath.Join(dir, "b"), nil, 0o644) == nil {
			t.Errorf("tag %q taken", bad)
		}
	}
}
