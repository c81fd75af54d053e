package keydir

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestShortNamesInTheMappedPart: a file of one key kept without a File
// whose name fits in its number's mapped part (nameCap bytes) keeps it
// there and nothing on the heap: a store of such files keeps no heap part
// of any page of numbers (numbers.pages), not even the list of them,
// where each file's packed name and the pointer to it were the
// collector's to mark at every collection — at 1,000,000 files one
// collection 20–23 ms of CPU where a store of one key took 1.3–1.8
// (docs/design.md, "Memory of a loaded store", step 6). A longer name
// (nameCap+1) is packed on the heap, and its page alone keeps a heap
// part.
func TestShortNamesInTheMappedPart(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "keys.d")
	const n = 3 * pageLen
	for i := range n {
		keydirtest.Put(t, filepath.Join(dir, fmt.Sprintf("k%05d.json", i)), keydirtest.JWK(t, key(t, 100+i)))
	}
	l := newLeanLoader(Source{Path: dir, Dir: true})
	s := l.Reload()
	if len(s.Problems) > 0 || s.numFiles() != n {
		t.Fatalf("%d files, problems %v", s.numFiles(), s.Problems)
	}
	if len(s.numbers.pages) != 0 {
		t.Fatalf("the numbers of %d files of one key with short names keep a list of %d heap parts: no page needs one", n, len(s.numbers.pages))
	}
	for r := range s.Refs {
		if !isLean(s, r.Num()) {
			t.Fatalf("%s keeps a File", r.Name())
		}
	}

	// A name of nameCap bytes fits; one of nameCap+1 is packed on the
	// heap, and gives its page a heap part.
	fits, over := name(nameCap, 'f'), name(nameCap+1, 'o')
	keydirtest.Put(t, filepath.Join(dir, fits), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Put(t, filepath.Join(dir, over), keydirtest.JWK(t, key(t, 2)))
	s = l.Reload()
	f, o := refNamed(t, s, fits), refNamed(t, s, over)
	checkRef(t, s, f, fits, filepath.Join(dir, fits), key(t, 1))
	checkRef(t, s, o, over, filepath.Join(dir, over), key(t, 2))
	if h, _ := s.numbers.entry(f.Num()); h != nil {
		t.Errorf("a name of %d bytes is kept on the heap", nameCap)
	}
	if h, _ := s.numbers.entry(o.Num()); h == nil {
		t.Errorf("a name of %d bytes has no heap part: it does not fit", nameCap+1)
	}
	for p := range s.numbers.count() {
		if want, has := p == int(o.Num()-1)>>pageBits, s.numbers.heap(p) != nil; has != want {
			t.Errorf("page %d: a heap part %v, want %v (the long name's page alone)", p, has, want)
		}
	}
	before := s

	// The numbers of both go to other files, each name kind taking the
	// other's number: the heap part of the long name's number is nil
	// once a short name has it, and the number of a short name gets one.
	must(t, os.Remove(filepath.Join(dir, fits)))
	must(t, os.Remove(filepath.Join(dir, over)))
	l.Reload()
	short, long := "s.json", name(nameCap+5, 'l')
	keydirtest.Put(t, filepath.Join(dir, short), keydirtest.JWK(t, key(t, 3)))
	keydirtest.Put(t, filepath.Join(dir, long), keydirtest.JWK(t, key(t, 4)))
	s = l.Reload()
	sr, lr := refNamed(t, s, short), refNamed(t, s, long)
	if (sr.Num() != o.Num() || lr.Num() != f.Num()) && (sr.Num() != f.Num() || lr.Num() != o.Num()) {
		t.Fatalf("numbers %d and %d given to %d and %d: not the two freed", f.Num(), o.Num(), sr.Num(), lr.Num())
	}
	checkRef(t, s, sr, short, filepath.Join(dir, short), key(t, 3))
	checkRef(t, s, lr, long, filepath.Join(dir, long), key(t, 4))
	if h, _ := s.numbers.entry(sr.Num()); h != nil {
		t.Errorf("the number of %s, a short name, keeps a heap part", short)
	}
	if sr.Gen() == 0 || lr.Gen() == 0 {
		t.Errorf("numbers given again of generations %d and %d", sr.Gen(), lr.Gen())
	}
	gone, came := DiffRefs(before, s)
	if len(gone) != 2 || len(came) != 2 {
		t.Fatalf("%d gone and %d came, want 2 and 2", len(gone), len(came))
	}

	// The snapshot before still reads as it did, its pages left to the
	// collector and their memory given to other arrays.
	for i := range 40 {
		keydirtest.Replace(t, filepath.Join(dir, fmt.Sprintf("k%05d.json", i*70)), keydirtest.JWK(t, key(t, 10_000+i)))
		l.Reload()
		runtime.GC()
	}
	checkRef(t, before, f, fits, filepath.Join(dir, fits), key(t, 1))
	checkRef(t, before, o, over, filepath.Join(dir, over), key(t, 2))
}

// name returns a name of n bytes, of c but for ".json".
func name(n int, c byte) string { return strings.Repeat(string(c), n-len(".json")) + ".json" }

// refNamed returns the file named name of s's first source.
func refNamed(t *testing.T, s *Snapshot[[32]byte], name string) FileRef[[32]byte] {
	t.Helper()
	for r := range s.Refs {
		if r.Name() == name {
			return r
		}
	}
	t.Fatalf("no file %s", name)
	return FileRef[[32]byte]{}
}

// checkRef checks that r, of s, reads as the file named name at path of
// the one key k, by every way there is to read it.
func checkRef(t *testing.T, s *Snapshot[[32]byte], r FileRef[[32]byte], name, path string, k *jwk.Key) {
	t.Helper()
	sum := k.SPKIHash()
	at, ok := s.RefAt(r.Num())
	if !ok || at.Name() != name || at.Path() != path || at.Item(0) != sum || s.ItemAt(r.Num(), 0) != sum || at.Len() != 1 || !at.InDir() {
		t.Fatalf("number %d reads %v %q %q, want %q %q", r.Num(), ok, at.Name(), at.Path(), name, path)
	}
	f := s.FileAt(r.Num())
	if f.Name() != name || f.Path() != path || len(f.Items()) != 1 || f.Items()[0] != sum {
		t.Fatalf("the File of number %d reads %q %q", r.Num(), f.Name(), f.Path())
	}
	if ff := at.File(); ff.Name() != name {
		t.Fatalf("FileRef.File of number %d reads %q", r.Num(), ff.Name())
	}
	if c := s.numbers.compareName(r.Num(), name); c != 0 {
		t.Fatalf("compareName(%d, %q) = %d", r.Num(), name, c)
	}
	if s.numbers.compareName(r.Num(), name+"~") >= 0 || s.numbers.compareName(r.Num(), name[:len(name)-1]) <= 0 {
		t.Fatalf("compareName of number %d does not order %q", r.Num(), name)
	}
}
