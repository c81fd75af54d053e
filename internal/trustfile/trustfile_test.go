package trustfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, path, data string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// The rule climbs from the file to the top: each directory on the way,
// and for a link, the target and its own directories.
func TestRuleClimbsToTheTop(t *testing.T) {
	base := t.TempDir()
	top := filepath.Join(base, "home")
	file := write(t, filepath.Join(top, "sub", "dir", "f.json"), "x", 0o644)
	r := Rule{Top: top}
	check := func(want string) {
		t.Helper()
		_, _, err := r.ReadFile(file)
		var pe *PermissionError
		switch {
		case want == "" && err != nil:
			t.Errorf("refused: %v", err)
		case want != "" && (!errors.As(err, &pe) || pe.Path != want):
			t.Errorf("got %v, want a *PermissionError naming %s", err, want)
		}
	}
	check("")
	for _, d := range []string{filepath.Join(top, "sub", "dir"), filepath.Join(top, "sub"), top} {
		if err := os.Chmod(d, 0o775); err != nil {
			t.Fatal(err)
		}
		check(d)
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Above the top is not the rule's business (base may be /tmp's child).
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	check("")
	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	// The file itself.
	if err := os.Chmod(file, 0o646); err != nil {
		t.Fatal(err)
	}
	check(file)
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	// Off turns the checks off.
	if err := os.Chmod(top, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (Rule{Top: top, Off: true}).ReadFile(file); err != nil {
		t.Errorf("Off: %v", err)
	}
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	// Another owner (as root only).
	if os.Geteuid() == 0 {
		if err := os.Chown(filepath.Join(top, "sub"), 4242, 4242); err != nil {
			t.Fatal(err)
		}
		_, _, err := r.ReadFile(file)
		var pe *PermissionError
		if !errors.As(err, &pe) || pe.Owner != 4242 {
			t.Errorf("a directory owned by uid 4242: %v", err)
		}
	} else {
		t.Log("not root: cannot make a directory owned by another user")
	}
}

// A link is checked as its target, with the target's directories; a link
// out of the top is checked up to /; a dangling link is a *LinkError.
func TestRuleFollowsLinks(t *testing.T) {
	base := t.TempDir()
	top := filepath.Join(base, "home")
	open := filepath.Join(base, "home", "open")
	target := write(t, filepath.Join(open, "t.json"), "x", 0o644)
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(top, "l.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	var pe *PermissionError
	if _, _, err := (Rule{Top: top}).ReadFile(link); !errors.As(err, &pe) || pe.Path != open || pe.For != link {
		t.Errorf("a link into a world-writable directory: %v", err)
	}
	// Outside the top, the climb goes to / — and t.TempDir() is below
	// /tmp, which others may write: refused.
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(os.TempDir()); err == nil && fi.Mode().Perm()&0o002 != 0 {
		if _, _, err := (Rule{Top: filepath.Join(top, "elsewhere")}).ReadFile(link); !errors.As(err, &pe) {
			t.Errorf("a link out of the top into a tree below %s: %v, want refused", os.TempDir(), err)
		}
	}
	if _, _, err := (Rule{Top: top}).ReadFile(link); err != nil {
		t.Errorf("a link to a safe file inside the top: %v", err)
	}
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	var le *LinkError
	if _, _, err := (Rule{Top: top}).ReadFile(link); !errors.As(err, &le) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dangling link: %v, want a *LinkError", err)
	}
}

// A link is only as safe as the directory that holds it: whoever may
// write there may point it elsewhere, or remove it (for a revocation list,
// lifting every revocation). A home others may write therefore refuses
// its trust files even when they are links into a safe directory.
func TestRuleChecksWhereTheLinkIs(t *testing.T) {
	base := t.TempDir()
	home := filepath.Join(base, "home")
	safe := filepath.Join(base, "safe")
	target := write(t, filepath.Join(safe, "revoked.json"), "x", 0o644)
	link := filepath.Join(home, "revoked_keys.json")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	dirLink := filepath.Join(home, "authorized_keys.d")
	if err := os.Symlink(safe, dirLink); err != nil {
		t.Fatal(err)
	}
	r := Rule{Top: base}
	if _, _, err := r.ReadFile(link); err != nil {
		t.Fatalf("a link in a safe home: %v", err)
	}
	if err := r.CheckDir(dirLink); err != nil {
		t.Fatalf("a linked directory in a safe home: %v", err)
	}
	if err := os.Chmod(home, 0o777); err != nil {
		t.Fatal(err)
	}
	var pe *PermissionError
	if _, _, err := r.ReadFile(link); !errors.As(err, &pe) || pe.Path != home {
		t.Errorf("a link in a world-writable home: %v, want a *PermissionError naming the home", err)
	}
	if err := r.CheckDir(dirLink); !errors.As(err, &pe) || pe.Path != home {
		t.Errorf("a linked directory in a world-writable home: %v, want a *PermissionError naming the home", err)
	}
}

// Every link followed on the way to a trust file is only as safe as the
// directory holding it, not the last one alone: a link to a link, a
// linked directory on the way, a link in a .d directory to either. Only
// the links on the way to the top are the admin's own business, as the
// directories above the top are. Each was once read with the
// world-writable directory unchecked, whose writer could point the link
// at another file (for a revocation list, an empty one).
func TestRuleChecksEveryLinkOnTheWay(t *testing.T) {
	base := t.TempDir()
	home := filepath.Join(base, "home")
	open := filepath.Join(home, "open")
	safe := filepath.Join(home, "safe")
	target := write(t, filepath.Join(safe, "revoked.json"), "x", 0o644)
	dotD := filepath.Join(home, "revoked_keys.d")
	for _, d := range []string{open, dotD} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, path string) string {
		t.Helper()
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	hop := link(target, filepath.Join(open, "hop"))
	linkedDir := link(safe, filepath.Join(open, "d"))
	chain := link(hop, filepath.Join(home, "chain.json"))
	viaDir := link(filepath.Join(linkedDir, "revoked.json"), filepath.Join(home, "via-dir.json"))
	inPath := filepath.Join(linkedDir, "revoked.json")
	inDotD := link(hop, filepath.Join(dotD, "bob.json"))
	relative := link(filepath.Join("..", "open", "d", "revoked.json"), filepath.Join(dotD, "carol.json"))

	r := Rule{Top: home}
	read := func(path string) error { _, _, err := r.ReadFile(path); return err }
	inDir := func(path string) error {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		return r.CheckFile(path, fi, true, true)
	}
	cases := []struct {
		name  string
		check func() error
	}{
		{"a link to a link", func() error { return read(chain) }},
		{"a link through a linked directory", func() error { return read(viaDir) }},
		{"a path through a linked directory", func() error { return read(inPath) }},
		{"a linked directory", func() error { return r.CheckDir(linkedDir) }},
		{"a link in a .d directory to a link", func() error { return inDir(inDotD) }},
		{"a relative link in a .d directory through a linked directory", func() error { return inDir(relative) }},
	}
	for _, c := range cases {
		if err := c.check(); err != nil {
			t.Errorf("%s, every directory safe: %v", c.name, err)
		}
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		var pe *PermissionError
		if err := c.check(); !errors.As(err, &pe) || pe.Path != open {
			t.Errorf("%s, the link in a world-writable directory: %v, want a *PermissionError naming %s", c.name, err, open)
		}
	}

	// Links on the way to the top are above the rule, as the directories
	// there are: a home reached through a linked directory in a
	// world-writable one is read.
	realHomes := filepath.Join(base, "real")
	write(t, filepath.Join(realHomes, "h", "ca.pem"), "x", 0o644)
	viaTop := link(realHomes, filepath.Join(open, "homes"))
	topOnLink := filepath.Join(viaTop, "h")
	if _, _, err := (Rule{Top: topOnLink}).ReadFile(filepath.Join(topOnLink, "ca.pem")); err != nil {
		t.Errorf("a home reached through a link above it: %v", err)
	}
	if err := (Rule{Top: topOnLink}).CheckDir(topOnLink); err != nil {
		t.Errorf("the home itself, reached through a link above it: %v", err)
	}
	// A loop of links is an error, not a hang.
	loop := link(filepath.Join(home, "loop2"), filepath.Join(home, "loop1"))
	link(loop, filepath.Join(home, "loop2"))
	if err := r.CheckDir(loop); err == nil {
		t.Error("a loop of links: checked")
	}
}
