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

// A file a listing showed as regular is read without a stat before
// (fileState.unchecked): its read checks its own mode and owner, which is
// the whole rule for a regular file in a checked directory. A link put in
// its place between the listing and the read would be judged by that
// alone, without its target's directories: so such a read refuses a link
// (trustfile.ReadListed), and the next reload judges the link as any.
func TestListedFileReplacedByALinkBeforeTheRead(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "authorized_keys.d")
	file := filepath.Join(dir, "a.json")
	keydirtest.Write(t, file, keydirtest.JWK(t, key(t, 1)))
	shared := filepath.Join(base, "shared") // anyone may write here
	evil := filepath.Join(shared, "evil.json")
	keydirtest.Write(t, evil, keydirtest.JWK(t, key(t, 2)))
	must(t, os.Chmod(shared, 0o777))
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Home: base, Convert: fpConvert})
	swapped := false
	l.beforeRead = func(path string) {
		if path == file && !swapped {
			swapped = true
			must(t, os.Remove(file))
			must(t, os.Symlink(evil, file))
		}
	}
	s := l.Reload()
	if !swapped {
		t.Fatal("the file was not read")
	}
	if got := fingerprints(s); len(got) != 0 {
		t.Fatalf("keys %v through a link put in place of a listed file", got)
	}
	var ce *trustfile.ChangedError
	if len(s.Problems) != 1 || s.Problems[0].Path != file || !errors.As(s.Problems[0].Err, &ce) || ce.Path != file {
		t.Fatalf("problems %v, want a *trustfile.ChangedError naming %s", s.Problems, file)
	}
	// The next reload stats the link and applies the whole rule to it.
	s = l.Reload()
	var pe *trustfile.PermissionError
	if got := fingerprints(s); len(got) != 0 || len(s.Problems) != 1 || !errors.As(s.Problems[0].Err, &pe) || pe.Path != shared {
		t.Errorf("the next reload: keys %v, problems %v; want none, and a *PermissionError naming %s", got, s.Problems, shared)
	}
}

// A removal's reload (ReloadComplete) and an Add's (ReloadCurrent) read
// again, at once, a file replaced while it was read — another keytool's
// rewrite of it (EditFile), renamed in between the stat and the read.
// Reload leaves it a problem until the next reload, and `authorize
// --remove` of a member of a set another process was rewriting said no
// key had that name, and removed nothing (TestParallelRemoveProcesses,
// about 1 run in 30).
func TestReloadCompleteReadsAReplacedFileAgain(t *testing.T) {
	for _, reload := range []string{"ReloadComplete", "ReloadCurrent"} {
		t.Run(reload, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "authorized_keys.d")
			file := filepath.Join(dir, "team.json")
			keydirtest.Write(t, file, keydirtest.JWK(t, key(t, 1)))
			l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Home: base, Convert: fpConvert})
			l.Reload()
			swaps := 0
			l.beforeRead = func(path string) {
				if path == file && swaps == 0 {
					swaps++
					keydirtest.Replace(t, file, keydirtest.JWK(t, key(t, 2))) // a rename over it
				}
			}
			keydirtest.Replace(t, file, keydirtest.JWK(t, key(t, 3)))
			s := map[string]func() *Snapshot[string]{"ReloadComplete": l.ReloadComplete, "ReloadCurrent": l.ReloadCurrent}[reload]()
			if swaps != 1 {
				t.Fatal("the file was not read")
			}
			if got := fingerprints(s); len(s.Problems) != 0 || len(got) != 1 || got[0] != key(t, 2).Fingerprint() {
				t.Errorf("keys %v, problems %v; want the key of the file there now", got, s.Problems)
			}
		})
	}
}
