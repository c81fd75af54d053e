package keydir

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/trustfile"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// Hostile files in a .d directory: each is skipped and reported by name
// with a specific reason, the scan ends in bounded time, and the good
// file beside them keeps working, both on a one-shot load and while
// watching.
func TestHostileFilesInDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	good := key(t, 1)
	keydirtest.Write(t, filepath.Join(dir, "good.json"), keydirtest.JWK(t, good))

	// A 100 MB JWK: sparse, so the test is fast; refused from its size
	// before a byte is read.
	huge := filepath.Join(dir, "huge.json")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"kty":"EC","crv":"P-256","x":"`); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// Symlink loops: two links pointing at each other, and a link to
	// itself. A link to the directory itself is a subdirectory (skipped).
	must(t, os.Symlink("loop-b", filepath.Join(dir, "loop-a")))
	must(t, os.Symlink("loop-a", filepath.Join(dir, "loop-b")))
	must(t, os.Symlink("self", filepath.Join(dir, "self")))
	must(t, os.Symlink(".", filepath.Join(dir, "dot")))
	// An endless device: must never be read.
	must(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero.json")))
	// Deeply nested JSON.
	keydirtest.Write(t, filepath.Join(dir, "nested.json"), []byte(`{"kty":"EC","a":`+strings.Repeat(`{"a":`, 1_000_000)+"1"+strings.Repeat("}", 1_000_001)))

	wantProblems := map[string]func(Problem) bool{
		"huge.json": func(p Problem) bool {
			return errors.Is(p.Err, jwk.ErrTooLarge) && strings.Contains(p.Error(), "104857600 bytes")
		},
		"loop-a":      func(p Problem) bool { return errors.Is(p.Err, syscall.ELOOP) },
		"loop-b":      func(p Problem) bool { return errors.Is(p.Err, syscall.ELOOP) },
		"self":        func(p Problem) bool { return errors.Is(p.Err, syscall.ELOOP) },
		"zero.json":   func(p Problem) bool { return strings.Contains(p.Error(), "not a regular file") },
		"nested.json": func(p Problem) bool { return strings.Contains(p.Error(), "nested deeper than 32 levels") },
	}
	check := func(t *testing.T, s *Snapshot[string]) {
		t.Helper()
		if got := fingerprints(s); !slices.Equal(got, want(t, good)) {
			t.Errorf("the good file must keep working: got %v", got)
		}
		seen := map[string]bool{}
		for _, p := range s.Problems {
			name := filepath.Base(p.Path)
			ok := wantProblems[name]
			if ok == nil {
				t.Errorf("unexpected problem: %v", p)
				continue
			}
			if !ok(p) {
				t.Errorf("%s: problem %q is not the expected one", name, p.Error())
			}
			seen[name] = true
		}
		for name := range wantProblems {
			if !seen[name] {
				t.Errorf("%s: not reported", name)
			}
		}
	}
	t.Run("load", func(t *testing.T) {
		start := time.Now()
		s := newLoader(Source{Path: dir, Dir: true}).Reload()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("loading took %v", d)
		}
		check(t, s)
		for _, p := range s.Problems {
			t.Logf("%v", p)
		}
	})
	t.Run("watch", func(t *testing.T) {
		l := watchLoader(t, Source{Path: dir, Dir: true})
		check(t, l.Snapshot())
		// The store goes on following changes beside the hostile files.
		second := key(t, 2)
		start := time.Now()
		keydirtest.Write(t, filepath.Join(dir, "second.json"), keydirtest.JWK(t, second))
		eventually(t, l, "a key added beside hostile files", start, want(t, good, second))
		must(t, os.Remove(filepath.Join(dir, "second.json")))
		eventually(t, l, "and removed", time.Now(), want(t, good))
	})
}

// Symlinks that lead out of a .d directory are followed (Kubernetes'
// visible names are links, and config management links files into place),
// but the file reached must pass the strict-mode checks itself: a link to
// a file that someone else could write is refused, naming the link. A
// dangling link is a problem, never an absent file (in a revocation
// source it must fail closed: TestDanglingLinkInRevocationFailsClosed).
func TestSymlinkOutsideTheDirectory(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "authorized_keys.d")
	outside := filepath.Join(base, "elsewhere")
	keydirtest.Write(t, filepath.Join(outside, "ok.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(outside, "open.json"), keydirtest.JWK(t, key(t, 2)))
	must(t, os.Chmod(filepath.Join(outside, "open.json"), 0o666))
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.Symlink(filepath.Join(outside, "ok.json"), filepath.Join(dir, "ok.json")))
	must(t, os.Symlink("../elsewhere/open.json", filepath.Join(dir, "open.json")))
	must(t, os.Symlink(filepath.Join(outside, "missing.json"), filepath.Join(dir, "dangling.json")))

	s := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Home: base, Convert: fpConvert}).Reload()
	if got := fingerprints(s); !slices.Equal(got, want(t, key(t, 1))) {
		t.Errorf("keys %v, want only the key reached through ok.json", got)
	}
	if len(s.Problems) != 2 {
		t.Fatalf("problems %v, want one for dangling.json and one for open.json", s.Problems)
	}
	var le *trustfile.LinkError
	if p := s.Problems[0]; p.Path != filepath.Join(dir, "dangling.json") || !errors.As(p.Err, &le) {
		t.Errorf("problem %v, want a *trustfile.LinkError naming the dangling link", p)
	}
	var pe *trustfile.PermissionError
	if p := s.Problems[1]; p.Path != filepath.Join(dir, "open.json") || !errors.As(p.Err, &pe) || pe.Path != filepath.Join(outside, "open.json") {
		t.Errorf("problem %v, want a *PermissionError naming the link and its target", p)
	}
	if os.Geteuid() == 0 {
		// A link to a file owned by another user is refused too.
		must(t, os.Chmod(filepath.Join(outside, "open.json"), 0o644))
		must(t, os.Chown(filepath.Join(outside, "open.json"), 4242, 4242))
		s = New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Home: base, Convert: fpConvert}).Reload()
		if len(s.Problems) != 2 || !errors.As(s.Problems[1].Err, &pe) || pe.Owner != 4242 {
			t.Errorf("link to another user's file: problems %v", s.Problems)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
