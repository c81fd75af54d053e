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
// only row with a stamp part of its own, an odd one (found by review:
// every other file paid a rare part, more than the whole state cost
// before rows).
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
		if r := (fileRow[string]{h, d}); r.rare != nil || r.odd != 0 {
			own = append(own, filepath.Base(r.path(&l.numbers)))
		}
	}
	if !slices.Equal(own, []string{"k00.json"}) {
		t.Errorf("rows with a stamp part of their own: %q, want only k00.json's", own)
	}
}

// TestOddRowsShareTheirStampPart: in a directory whose files have two
// modes, the rows of the rarer mode share one stamp part, which each
// names by a byte of its mapped part (found by review: each paid a rare
// part of its own, ~144 bytes, half the files of a directory half 0600
// and half 0644; later a pointer each to a shared one, which kept every
// chunk holding one from being compact), while a row that has more than
// its mode to keep (a skipped file) keeps its own rare part; and a shared
// part still tells each row's changes: a chmod of one file to the
// commonest mode, or to a third mode, is seen and re-read, the others
// not.
func TestOddRowsShareTheirStampPart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	for i := range 20 {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%02d.json", i)), keydirtest.JWK(t, key(t, i)))
		if i%3 == 1 {
			must(t, os.Chmod(filepath.Join(dir, fmt.Sprintf("k%02d.json", i)), 0o600)) // 7 of 20
		}
	}
	l := newLoader(Source{Path: dir, Dir: true})
	if n := len(fingerprints(l.Reload())); n != 20 {
		t.Fatalf("%d keys loaded, want 20", n)
	}
	if c := l.states[0].files.chunks; len(c) != 1 || c[0].h != nil {
		t.Errorf("the chunk of rows of two modes keeps a heap part: not compact")
	}

	keydirtest.Write(t, filepath.Join(dir, "bad.json"), []byte("{not json\n"))
	must(t, os.Chmod(filepath.Join(dir, "bad.json"), 0o600))
	var read []string
	l.beforeRead = func(path string) { read = append(read, filepath.Base(path)) }
	s := l.Reload()
	if n := len(fingerprints(s)); n != 20 {
		t.Fatalf("%d keys loaded, want 20", n)
	}
	fi, err := os.Stat(filepath.Join(dir, "k01.json"))
	must(t, err)
	_, odd := trustfile.StampOf(fi).Split()
	ss := &l.states[0]
	parts := map[*rareRow[string]][]string{}
	var oddRows []string
	for h, d := range ss.files.all {
		r := fileRow[string]{h, d}
		if r.rare != nil {
			parts[r.rare] = append(parts[r.rare], filepath.Base(r.path(&l.numbers)))
		}
		if r.odd != 0 {
			if *ss.odd[r.odd-1] != odd {
				t.Errorf("%s names an odd stamp part not the 0600 files'", r.path(&l.numbers))
			}
			oddRows = append(oddRows, filepath.Base(r.path(&l.numbers)))
		}
	}
	if len(parts) != 1 {
		t.Fatalf("%d rare parts, want 1 (bad.json's own): %v", len(parts), parts)
	}
	for p, names := range parts {
		if p.problem == nil || !slices.Equal(names, []string{"bad.json"}) {
			t.Errorf("the rare part is %q's, want bad.json's alone, with its problem", names)
		}
	}
	if len(oddRows) != 7 || ss.odd[1] != nil {
		t.Errorf("rows naming an odd stamp part: %q, want the 7 files of mode 0600 (and one odd part: the second is %v)", oddRows, ss.odd[1])
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

// TestMoreOddStampPartsThanRowsName: a directory of more modes than a row
// can name odd stamp parts of (maxOdd besides the source's own) keeps the
// stamp of the rest in rare parts of their own; every row's stamp is its
// file's, and an unchanged directory is not read again.
func TestMoreOddStampPartsThanRowsName(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	// Most of the files 0644 (the source's own part, a majority:
	// commonestDir), then one each of ten other modes.
	modes := []os.FileMode{0o600, 0o640, 0o604, 0o400, 0o440, 0o444, 0o404, 0o700, 0o740, 0o744}
	for range len(modes) + 1 {
		modes = append(modes, 0o644)
	}
	for i, m := range modes {
		path := filepath.Join(dir, fmt.Sprintf("k%02d.json", i))
		keydirtest.Write(t, path, keydirtest.JWK(t, key(t, i)))
		must(t, os.Chmod(path, m))
	}
	l := newLoader(Source{Path: dir, Dir: true})
	var read []string
	l.beforeRead = func(path string) { read = append(read, filepath.Base(path)) }
	if n := len(fingerprints(l.Reload())); n != len(modes) {
		t.Fatalf("%d keys loaded, want %d", n, len(modes))
	}
	ss := &l.states[0]
	own, named := 0, 0
	for h, d := range ss.files.all {
		r := fileRow[string]{h, d}
		fi, err := os.Stat(r.path(&l.numbers))
		must(t, err)
		if ss.stamp(&r) != trustfile.StampOf(fi) {
			t.Errorf("%s: its row keeps another stamp", r.path(&l.numbers))
		}
		switch {
		case r.rare != nil && r.rare.dir != nil:
			own++
		case r.odd != 0:
			named++
		}
	}
	// Eleven modes: the source's own, maxOdd named, two in rare parts.
	if named != maxOdd || own != 10-maxOdd {
		t.Errorf("%d rows name an odd part, %d keep their own, want %d and %d", named, own, maxOdd, 10-maxOdd)
	}
	read = nil
	l.Reload()
	if len(read) != 0 {
		t.Errorf("an unchanged directory read again: %q", read)
	}
}
