package authkeys

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
)

// A revocation reached through a symbolic link cannot be undone by
// someone who may write where the link points. revoked_keys.d/bob.json
// links to a file in a world-writable directory (as /tmp is): that
// revocation input fails the strict-mode rule at once, so every key is
// refused — and when the target is renamed away, the dangling link still
// fails closed instead of counting as "no file" (bob admitted, nothing
// logged, as it used to be).
func TestRevocationThroughSymlinkFailsClosed(t *testing.T) {
	base := t.TempDir()
	home := filepath.Join(base, "home")
	opts := HomeOptions(home)
	opts.Debounce, opts.Rescan = 10*time.Millisecond, 100*time.Millisecond
	// The top of the trust tree holds the shared directory too (outside
	// it, a link's target is checked up to /, and the test's /tmp would
	// fail that on its own).
	opts.Home = base
	alice, bob := key(t, 1), key(t, 2)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "alice.json"), keydirtest.JWK(t, alice))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "bob.json"), keydirtest.JWK(t, bob))
	shared := filepath.Join(base, "shared")
	target := filepath.Join(shared, "bob-revoked.json")
	keydirtest.Write(t, target, keydirtest.JWK(t, bob))
	if err := os.MkdirAll(opts.RevokedDirs[0], 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(opts.RevokedDirs[0], "bob.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	s := Open(context.Background(), opts)
	defer s.Close()
	check := func(what string, wantErr func(error) bool) {
		t.Helper()
		for _, k := range []struct {
			name string
			sum  [32]byte
		}{{"alice", alice.SPKIHash()}, {"bob", bob.SPKIHash()}} {
			deadline := time.Now().Add(10 * time.Second) // a bound on a hang: the watcher's reload
			for {
				_, err := s.Lookup(k.sum, netip.Addr{})
				if wantErr(err) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: Lookup(%s) = %v", what, k.name, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	var re *RevokedError
	revokedAll := func(err error) bool { return errors.As(err, &re) && re.Err != nil }

	// The link's target is in a directory a stranger could write: failing
	// closed, naming the directory.
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	check("target in a world-writable directory", revokedAll)
	var pe *trustfile.PermissionError
	if !errors.As(re.Err, &pe) || pe.Path != shared {
		t.Errorf("the refusal's cause %v, want a *trustfile.PermissionError naming %s", re.Err, shared)
	}

	// A safe directory: bob is revoked, alice admitted.
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	check("target in a safe directory", func(err error) bool {
		return err == nil || errors.As(err, &re) && re.Err == nil && re.Fingerprint == bob.Fingerprint()
	})

	// The target is renamed away (no event in revoked_keys.d: the
	// periodic rescan finds it): a dangling link fails closed.
	if err := os.Rename(target, target+".gone"); err != nil {
		t.Fatal(err)
	}
	check("dangling link", revokedAll)
	var le *trustfile.LinkError
	if !errors.As(re.Err, &le) || le.Path != link {
		t.Errorf("the refusal's cause %v, want a *trustfile.LinkError naming %s", re.Err, link)
	}
}

// Add and Revoke write nothing into a directory the strict-modes rule
// refuses to read from: in a home another user owns (uid 65534 here, or
// one group members may write), authorized_keys.d may be their link to
// another home's, which trusts what lands there — root running
// "keytool -H ~alice/.keytool authorize" for her authorized her key on
// the server whose home the link named (found by review: the file was
// written, then reported as "added …, but it does not load"). Once the
// home is the admin's again, the same link is followed and written
// through, as a link in a safe home is.
func TestWritesRefusedWhereTheRuleRefuses(t *testing.T) {
	base := t.TempDir()
	server := HomeOptions(filepath.Join(base, "server"))
	for _, d := range []string{server.Dirs[0], server.RevokedDirs[0]} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	home := filepath.Join(base, "alice")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := HomeOptions(home)
	for _, l := range [][2]string{{server.Dirs[0], opts.Dirs[0]}, {server.RevokedDirs[0], opts.RevokedDirs[0]}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(l[1], 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	// The top of the trust tree holds the server's home too (outside it,
	// a link's target is checked up to /, and the test's /tmp would fail
	// that on its own): the one fault is the home's owner.
	opts.Home = base
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	mallory := key(t, 1)
	written := func() []string {
		var out []string
		for _, d := range []string{server.Dirs[0], server.RevokedDirs[0]} {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				out = append(out, filepath.Join(d, e.Name()))
			}
		}
		return out
	}
	s := Load(opts)
	var pe *trustfile.PermissionError
	if _, err := s.Add(mallory, "mallory", AddNew); !errors.As(err, &pe) || pe.Path != home {
		t.Errorf("Add: %v; want a *trustfile.PermissionError naming %s", err, home)
	}
	if _, err := s.Revoke(mallory); !errors.As(err, &pe) || pe.Path != home {
		t.Errorf("Revoke: %v; want a *trustfile.PermissionError naming %s", err, home)
	}
	if w := written(); len(w) > 0 {
		t.Fatalf("written through the links: %v", w)
	}
	s.Close()

	if err := os.Chown(home, 0, 0); err != nil {
		t.Fatal(err)
	}
	s = Load(opts)
	defer s.Close()
	if _, err := s.Add(mallory, "mallory", AddNew); err != nil {
		t.Fatalf("Add in the admin's home: %v", err)
	}
	lock := filepath.Join(server.Dirs[0], ".keytool.lock") // the writers' lock, made by the first
	if w := slices.DeleteFunc(written(), func(p string) bool { return p == lock }); len(w) != 1 {
		t.Fatalf("Add in the admin's home wrote %v", written())
	}
}
