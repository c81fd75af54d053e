package enroll

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// claimsIn reads the claims of every name from one listing of used/,
// by claimsOf's rule: ".NAME.TAG.claim", TAG the hex of claimTagSize
// bytes, so that a name has none of a longer name's that starts with it
// and a dot, and nothing else in used/ is a claim.
func TestClaimsInByName(t *testing.T) {
	dir := t.TempDir()
	used := filepath.Join(dir, usedDir)
	if err := os.Mkdir(used, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{
		".a.0123456789abcdef.claim", ".a.fedcba9876543210.claim", ".a.b.0123456789abcdef.claim",
		".a.short.claim", ".a.0123456789abcdeg.claim", "a.0123456789abcdef.claim", ".a.0123456789abcdef.json", "a.json",
	} {
		if err := os.WriteFile(filepath.Join(used, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{
		"a":   {filepath.Join(used, ".a.0123456789abcdef.claim"), filepath.Join(used, ".a.fedcba9876543210.claim")},
		"a.b": {filepath.Join(used, ".a.b.0123456789abcdef.claim")},
	}
	if got := claimsIn(dir); !reflect.DeepEqual(got, want) {
		t.Errorf("claimsIn = %v, want %v", got, want)
	}
	if got := claimsOf(dir, "a"); !reflect.DeepEqual(got, want["a"]) {
		t.Errorf("claimsOf a = %v", got)
	}
}
