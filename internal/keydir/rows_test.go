package keydir

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// TestRowStampsTellChanges checks the stamps the loader keeps split in
// two (trustfile.StampFile in each row, the StampDir its source's files
// share, or the row's own when it differs: b.json's mode here): a rescan
// re-reads no file that did not change, and re-reads a file rewritten in
// place to the same size with its mtime set back (only the ctime tells),
// whether its stamp's shared part is its source's or its own; a chmod
// that makes a file's part its source's is seen, and then kept as such.
func TestRowStampsTellChanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	keys := map[string]*jwk.Key{"a.json": key(t, 1), "b.json": key(t, 2), "c.json": key(t, 3)}
	for name, k := range keys {
		keydirtest.Write(t, filepath.Join(dir, name), keydirtest.JWK(t, k))
	}
	must(t, os.Chmod(filepath.Join(dir, "b.json"), 0o600)) // the others are 0644
	l := newLoader(Source{Path: dir, Dir: true})
	var read []string
	l.beforeRead = func(path string) { read = append(read, filepath.Base(path)) }
	check := func(what string, wantRead ...string) {
		t.Helper()
		read = nil
		s := l.Reload()
		slices.Sort(read)
		if !slices.Equal(read, wantRead) {
			t.Errorf("%s: read %q, want %q", what, read, wantRead)
		}
		if got, w := fingerprints(s), want(t, keys["a.json"], keys["b.json"], keys["c.json"]); !slices.Equal(got, w) {
			t.Errorf("%s: keys %q, want %q", what, got, w)
		}
	}
	check("first load", "a.json", "b.json", "c.json")
	check("nothing changed")

	next := 10
	for _, name := range []string{"a.json", "b.json"} {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		must(t, err)
		var data []byte
		for ; len(data) != int(fi.Size()); next++ {
			if next > 100 {
				t.Fatalf("no key's JWK is %d bytes long", fi.Size())
			}
			keys[name] = key(t, next)
			data = keydirtest.JWK(t, keys[name])
		}
		keydirtest.WriteInPlace(t, path, data)
		must(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
		if after, err := os.Stat(path); err != nil || after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) {
			t.Fatalf("%s: size or mtime changed (%v)", name, err)
		}
		check(name+" rewritten to the same size and mtime", name)
		check(name + " unchanged since")
	}

	must(t, os.Chmod(filepath.Join(dir, "b.json"), 0o644))
	check("b.json made 0644 as the others", "b.json")
	check("nothing changed since the chmod")
}

// TestRowsShareTheCommonestStampPart: the shared part of a source's
// stamps (device, mode, owner) is the one most of its files have, not the
// first file's: one 0600 file first in a directory of 0644 files is the
// only row with a rare part of its own (found by review: every other file
// paid one, more than the whole state cost before rows).
func TestRowsShareTheCommonestStampPart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	for i := range 20 {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%02d.json", i)), keydirtest.JWK(t, key(t, i)))
	}
	must(t, os.Chmod(filepath.Join(dir, "k00.json"), 0o600)) // first by name; the others 0644
	l := newLoader(Source{Path: dir, Dir: true})
	if n := len(fingerprints(l.Reload())); n != 20 {
		t.Fatalf("%d keys loaded, want 20", n)
	}
	var own []string
	for h, d := range l.states[0].files.all {
		if r := (fileRow[string]{h, d}); r.rare != nil {
			own = append(own, filepath.Base(r.path(&l.numbers)))
		}
	}
	if !slices.Equal(own, []string{"k00.json"}) {
		t.Errorf("rows with a rare part: %q, want only k00.json's", own)
	}
}

// TestOddRowsShareTheirStampPart: in a directory whose files have two
// modes, the rows of the rarer mode share one rare part (found by review:
// each paid its own, ~144 bytes, half the files of a directory half 0600
// and half 0644), while a row that has more than its mode to keep (a
// skipped file) keeps its own; and a shared part still tells each row's
// changes: a chmod of one file to the commonest mode, or to a third mode,
// is seen and re-read, the others not.
func TestOddRowsShareTheirStampPart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	for i := range 20 {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%02d.json", i)), keydirtest.JWK(t, key(t, i)))
		if i%3 == 1 {
			must(t, os.Chmod(filepath.Join(dir, fmt.Sprintf("k%02d.json", i)), 0o600)) // 7 of 20
		}
	}
	keydirtest.Write(t, filepath.Join(dir, "bad.json"), []byte("{not json\n"))
	must(t, os.Chmod(filepath.Join(dir, "bad.json"), 0o600))
	l := newLoader(Source{Path: dir, Dir: true})
	var read []string
	l.beforeRead = func(path string) { read = append(read, filepath.Base(path)) }
	s := l.Reload()
	if n := len(fingerprints(s)); n != 20 {
		t.Fatalf("%d keys loaded, want 20", n)
	}
	fi, err := os.Stat(filepath.Join(dir, "k01.json"))
	must(t, err)
	_, odd := trustfile.StampOf(fi).Split()
	parts := map[*rareRow[string]][]string{}
	for h, d := range l.states[0].files.all {
		if r := (fileRow[string]{h, d}); r.rare != nil {
			parts[r.rare] = append(parts[r.rare], filepath.Base(r.path(&l.numbers)))
		}
	}
	if len(parts) != 2 {
		t.Fatalf("%d rare parts, want 2 (one shared by the 0600 keys, bad.json's own): %v", len(parts), parts)
	}
	for p, names := range parts {
		switch {
		case p.problem != nil:
			if !slices.Equal(names, []string{"bad.json"}) {
				t.Errorf("the rare part with a problem is %q's, want bad.json's alone", names)
			}
		case len(names) != 7 || p.dir == nil || *p.dir != odd:
			t.Errorf("a shared rare part of %q, want the 7 files of mode 0600's", names)
		}
	}

	for _, c := range []struct {
		name string
		mode os.FileMode
	}{{"k04.json", 0o644}, {"k07.json", 0o640}, {"k05.json", 0o600}} {
		read = nil
		must(t, os.Chmod(filepath.Join(dir, c.name), c.mode))
		if n := len(fingerprints(l.Reload())); n != 20 {
			t.Fatalf("after %s made %o: %d keys, want 20", c.name, c.mode, n)
		}
		if !slices.Equal(read, []string{c.name}) {
			t.Errorf("after %s made %o: read %q, want only it", c.name, c.mode, read)
		}
		fi, err := os.Stat(filepath.Join(dir, c.name))
		must(t, err)
		for h, d := range l.states[0].files.all {
			if r := (fileRow[string]{h, d}); filepath.Base(r.path(&l.numbers)) == c.name && l.states[0].stamp(&r) != trustfile.StampOf(fi) {
				t.Errorf("after %s made %o: its row keeps another stamp", c.name, c.mode)
			}
		}
	}
}
