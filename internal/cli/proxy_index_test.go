package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/trustfile"
)

// The advice to give the proxy --index-dir goes only with the reasons
// that are about writing the index: its lock, its making, its writing —
// not a trust directory the proxy may not list, nor any other error that
// wraps a permission denied (found by review).
func TestIndexAdviceOnlyForTheIndex(t *testing.T) {
	denied := &fs.PathError{Op: "open", Path: "/etc/keytool/.index", Err: syscall.EACCES}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"the index's lock", &keydir.NotProvedError{Reason: "the admin index could not be locked", Err: denied}, true},
		{"the index not made", &keydir.NotProvedError{Reason: "no admin index, and this user may not make one", Err: &fs.PathError{Op: "write", Path: "/etc/keytool", Err: syscall.EROFS}}, true},
		{"the index not written", &keydir.IndexNotWrittenError{Dir: "/etc/keytool/authorized_keys.d", Index: "/etc/keytool/.index", Err: denied}, true},
		{"a directory not listed", &keydir.NotProvedError{Dir: "/etc/keytool/revoked_keys.d", Reason: "cannot list it", Err: denied}, false},
		{"no early decisions, for another reason", &keydir.NotProvedError{Reason: "a feed has no stamps"}, false},
		{"permission denied, not the index", denied, false},
	} {
		if got := indexNotWritable(c.err); got != c.want {
			t.Errorf("%s: advice %v, want %v", c.name, got, c.want)
		}
	}
}

// --index-dir is refused inside the home's trust paths reached by their
// links too — authorized_keys.d a link to /srv/keys, revoked_keys.json
// a link to a file not made yet, which the index's directory would
// take the place of (found by review) — and accepted outside.
func TestIndexDirRefusedThroughLinks(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	keys := filepath.Join(root, "srv", "keys")
	for _, d := range []string{home, keys} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(keys, filepath.Join(home, "authorized_keys.d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "srv", "revoked.json"), filepath.Join(home, "revoked_keys.json")); err != nil {
		t.Fatal(err)
	}
	c := &cli{home: home}
	for _, dir := range []string{
		filepath.Join(keys, "idx"),
		filepath.Join(home, "authorized_keys.d", "idx"),
		filepath.Join(root, "srv", "revoked.json"),
		home + "/",
		filepath.Join(home, ".index"),
	} {
		if err := checkIndexDir(c, proxyOptions{indexDir: dir}); err == nil {
			t.Errorf("--index-dir %s: accepted, inside the home's trust", dir)
		}
	}
	for _, dir := range []string{filepath.Join(root, "srv", "cache"), filepath.Join(root, "cache", "keytool")} {
		if err := checkIndexDir(c, proxyOptions{indexDir: dir}); err != nil {
			t.Errorf("--index-dir %s: %v", dir, err)
		}
	}
}

// trustfile.RealPath follows links as the kernel does: a ".." in a link's target
// after a link is taken from where that link led (found by review: it
// was cleaned away lexically, and --index-dir at the real target of the
// home's revoked_keys.json accepted), and a cycle of links that grows
// the path at each turn ends at once, an error (it ran for minutes).
func TestRealPathAsTheKernel(t *testing.T) {
	root := t.TempDir()
	mk := func(dirs ...string) {
		for _, d := range dirs {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	link := func(target, name string) {
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
	}
	// /etc/keytool -> /srv/keytool/home; revoked_keys.json -> ../shared/revoked.json
	real := filepath.Join(root, "srv", "keytool", "home")
	mk(real, filepath.Join(root, "etc"))
	home := filepath.Join(root, "etc", "keytool")
	link(real, home)
	link("../shared/revoked.json", filepath.Join(real, "revoked_keys.json"))
	want := filepath.Join(root, "srv", "keytool", "shared", "revoked.json")
	if got, err := trustfile.RealPath(filepath.Join(home, "revoked_keys.json")); err != nil || got != want {
		t.Errorf("trustfile.RealPath: %s, %v; want %s", got, err, want)
	}
	if err := checkIndexDir(&cli{home: home}, proxyOptions{indexDir: want}); err == nil {
		t.Errorf("--index-dir %s (the home's revoked_keys.json) accepted", want)
	}
	// crl.pem, a link to a file not made yet.
	crl := filepath.Join(root, "srv", "pki", "crl.pem")
	link(crl, filepath.Join(real, "crl.pem"))
	if err := checkIndexDir(&cli{home: home}, proxyOptions{indexDir: crl}); err == nil {
		t.Errorf("--index-dir %s (the home's crl.pem) accepted", crl)
	}
	// c2 -> d2/x/…/x, d2 -> c2: a cycle that grows.
	link("d2/"+strings.Repeat("x/", 50)+"x", filepath.Join(root, "c2"))
	link("c2", filepath.Join(root, "d2"))
	done := make(chan error, 1)
	go func() { _, err := trustfile.RealPath(filepath.Join(root, "c2")); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("trustfile.RealPath of a cycle of links: no error")
		}
	case <-time.After(10 * time.Second): // a bound on a hang
		t.Error("trustfile.RealPath of a growing cycle of links: still running after 10 s")
	}
}
