package keydir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
)

// What is read must be what was checked: a file replaced between the
// stat the strict-mode rule saw and the read (a link swapped by whoever
// could, a rename) is a problem, not a source of keys, until it is read
// again — and then the rule sees the file as it is.
func TestFileReplacedBetweenCheckAndRead(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "authorized_keys.d")
	file := filepath.Join(dir, "a.json")
	keydirtest.Write(t, file, keydirtest.JWK(t, key(t, 1)))
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Home: base, Convert: fpConvert})
	l.Reload()
	swap := true
	l.cfg.ReadFile = func(path string) ([]byte, fs.FileInfo, error) {
		if swap && path == file {
			swap = false
			evil := filepath.Join(base, "evil.json")
			keydirtest.Write(t, evil, keydirtest.JWK(t, key(t, 2)))
			if err := os.Rename(evil, file); err != nil {
				t.Fatal(err)
			}
		}
		return trustfile.Read(path)
	}
	// A change the rescan sees (a new mtime), read through the swap.
	keydirtest.Replace(t, file, keydirtest.JWK(t, key(t, 3)))
	s := l.Reload()
	if got := fingerprints(s); len(got) != 0 {
		t.Fatalf("keys %v from a file swapped between check and read", got)
	}
	var ce *trustfile.ChangedError
	if len(s.Problems) != 1 || !errors.As(s.Problems[0].Err, &ce) {
		t.Fatalf("problems %v, want a *trustfile.ChangedError", s.Problems)
	}
	// The next reload checks and reads the file that is there now.
	s = l.Reload()
	if got := fingerprints(s); len(s.Problems) != 0 || len(got) != 1 || got[0] != key(t, 2).Fingerprint() {
		t.Errorf("the next reload: keys %v, problems %v; want the new file's key", got, s.Problems)
	}
}
