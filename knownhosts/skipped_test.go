package knownhosts

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// Skipped trust never widens trust. A is pinned in trusted_hosts.d; when
// that file (or the directory) is skipped for its modes, another key at A
// must not be an unknown host — which would mean a prompt, accept-new
// pinning the attacker's key into the refused directory, and after the
// mode is fixed, both keys pinned — but a refusal naming the skipped file.
func TestSkippedPinsNeverMakeAnUnknownHost(t *testing.T) {
	const addr = "db.example:5432"
	good, evil := key(t, 1), key(t, 2)
	for _, tc := range []struct {
		what  string
		chmod func(opts Options) (path string, mode os.FileMode)
	}{
		{"pin file 0664", func(o Options) (string, os.FileMode) { return filepath.Join(o.Dirs[0], "pins.json"), 0o664 }},
		{"pin directory 0775", func(o Options) (string, os.FileMode) { return o.Dirs[0], 0o775 }},
		{"home 0777", func(o Options) (string, os.FileMode) { return o.Home, 0o777 }},
	} {
		t.Run(tc.what, func(t *testing.T) {
			home := t.TempDir()
			opts := HomeOptions(home)
			pins := filepath.Join(opts.Dirs[0], "pins.json")
			keydirtest.Write(t, pins, keydirtest.JWK(t, pinned(t, 1, addr)))
			path, mode := tc.chmod(opts)
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			s := Load(opts)
			var skipped *SkippedFilesError
			if err := s.Check(addr, evil); !errors.As(err, &skipped) || len(skipped.Problems) == 0 {
				t.Fatalf("Check of another key while the pin is skipped: %v, want *SkippedFilesError", err)
			}
			// Another address is not "unknown" either: its pin may be in
			// the skipped file too.
			if err := s.Check("other.example:1", evil); !errors.As(err, &skipped) {
				t.Errorf("Check of another address: %v, want *SkippedFilesError", err)
			}
			// Nothing is pinned into the refused tree.
			if _, err := s.Add(addr, evil); !errors.As(err, &skipped) {
				t.Errorf("Add while skipped: %v, want *SkippedFilesError", err)
			}
			if _, err := s.Add("other.example:1", evil); !errors.As(err, &skipped) {
				t.Errorf("Add of another address while skipped: %v, want *SkippedFilesError", err)
			}
			ents, _ := keyDirEntries(opts.Dirs[0])
			if len(ents) != 1 {
				t.Errorf("trusted_hosts.d holds %d files, want only pins.json", len(ents))
			}
			// Fixed: the good key passes and the other is a changed key.
			if err := os.Chmod(path, mode&^0o022); err != nil {
				t.Fatal(err)
			}
			s.Reload()
			if err := s.Check(addr, good); err != nil {
				t.Errorf("the pinned key once fixed: %v", err)
			}
			var changed *KeyChangedError
			if err := s.Check(addr, evil); !errors.As(err, &changed) {
				t.Errorf("the other key once fixed: %v, want *KeyChangedError", err)
			}
		})
	}
}

// A malformed pin file is skipped the same way: a pin lost to a typo must
// not turn into a first-use prompt.
func TestMalformedPinFileRefusesUnknown(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "bad.json"), []byte(`{"kty":"EC"`))
	s := Load(opts)
	var skipped *SkippedFilesError
	if err := s.Check("db.example:5432", key(t, 1)); !errors.As(err, &skipped) || skipped.Problems[0].Path != filepath.Join(opts.Dirs[0], "bad.json") {
		t.Fatalf("Check: %v, want *SkippedFilesError naming bad.json", err)
	}
}
