package keydir

import (
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/keytool/keytool/internal/offheap"
)

// TestFileRowSize keeps the loader's row of a file at 56 bytes, a value
// in its source's list with no allocation of its own: a directory of a
// million keys holds a million of them (docs/design.md, "Memory of a
// loaded store"); and its part on the heap at 8 bytes, one pointer (its
// File is named by its number, in the part outside the heap: numbers),
// the rest (which offheap.New would refuse if it held a pointer)
// outside it.
func TestFileRowSize(t *testing.T) {
	if n := unsafe.Sizeof(fileRow[*int]{}); n > 56 {
		t.Fatalf("fileRow is %d bytes, more than 56", n)
	}
	if n := unsafe.Sizeof(rowRefs[*int]{}); n > 8 {
		t.Fatalf("a row's part on the heap is %d bytes, more than 8", n)
	}
	offheap.New[rowData](1)
}

// TestChunkHeaderSize keeps a chunk's header at 24 bytes: the list of
// headers is on the heap, some 500 of them at a million rows, and every
// byte the store keeps there is one the handshakes' garbage may not fill
// before the collector runs (docs/benchmarks.md, "The collector at a
// million single-key files"): its H parts are behind a pointer (chunk.h).
func TestChunkHeaderSize(t *testing.T) {
	if n := unsafe.Sizeof(chunk[rowRefs[*int], rowData]{}); n > 24 {
		t.Fatalf("a chunk's header is %d bytes, more than 24", n)
	}
}

// TestFileRowName checks that the name a row reads at its source's
// offset (prefixOf) is the name the state was made with, for every kind
// of source, a file that loaded (named by its File) or not (by its rare
// part's path), and a row still pending; and that a File gives back the
// path it was read from, its source's part shared with the source.
func TestFileRowName(t *testing.T) {
	for _, c := range []struct {
		src        Source
		name, path string
	}{
		{Source{Path: "/keys/authorized_keys.d", Dir: true}, "a.json", pathIn("/keys/authorized_keys.d", "a.json")},
		{Source{Path: "/", Dir: true}, "a.json", pathIn("/", "a.json")},
		{Source{Path: "/keys/authorized_keys.json"}, "/keys/authorized_keys.json", "/keys/authorized_keys.json"},
		{Source{Path: "etcd:/prefix", Feed: nopFeed{}}, "x", "etcd:/prefix/x"},
	} {
		l := New(Config[*int]{Sources: []Source{c.src}})
		ss := &l.states[0]
		f := newFileState[*int](0, c.path)
		if got := f.name(ss.nameAt); got != c.name {
			t.Errorf("state name of %q = %q, want %q", c.path, got, c.name)
		}
		pending := f.pendingRow()
		f.read, f.problem = true, &Problem{Path: c.path}
		failed := ss.row(f, &l.numbers)
		f.problem, f.parsed = nil, parsed[*int]{file: l.newFile(0, c.path, []*int{new(int)})} // a file of one key shares its source's part
		if got := f.parsed.file.Path(); got != c.path || f.parsed.file.Name() != c.name || f.parsed.file.src != ss.fsrc {
			t.Errorf("the File of %q has path %q, name %q (shares its source's part: %v)", c.path, got, f.parsed.file.Name(), f.parsed.file.src == ss.fsrc)
		}
		loaded := ss.row(f, &l.numbers)
		for what, r := range map[string]*fileRow[*int]{"pending": &pending, "failed": &failed, "loaded": &loaded} {
			if got := r.name(&l.numbers, ss.nameAt); got != c.name {
				t.Errorf("name of the %s row of %q = %q, want %q", what, c.path, got, c.name)
			}
		}
	}
}

// nopFeed is a Feed that holds nothing, for a source's kind alone.
type nopFeed struct{}

func (nopFeed) Name() string                         { return "nop" }
func (nopFeed) View() FeedView                       { return FeedView{} }
func (nopFeed) Subscribe() (<-chan struct{}, func()) { return nil, func() {} }

// TestFileSize keeps a File of a 32-byte item (authkeys' SPKI hash) at 48
// bytes, the item in it: a directory of single-key files holds a File for
// each, where a File and a one-item array beside it were 48 + 32, and a
// File with a name string and a pointer to its items 64 (docs/design.md,
// "Memory of a loaded store").
func TestFileSize(t *testing.T) {
	if n := unsafe.Sizeof(File[[32]byte]{}); n > 48 {
		t.Fatalf("File of a 32-byte item is %d bytes, more than 48", n)
	}
	one := NewFile("/k.json", 0, [][32]byte{{1}})
	if items := one.Items(); len(items) != 1 || items[0] != [32]byte{1} || &items[0] != &one.one {
		t.Fatalf("a file of one item holds it itself: Items() = %v", items)
	}
	for _, items := range [][][32]byte{nil, {{1}, {2}}} {
		if f := NewFile("/k.json", 0, items); len(f.Items()) != len(items) || f.src.many == nil {
			t.Fatalf("a file of %d items: Items() = %v", len(items), f.Items())
		}
	}
}

// TestFileName: a File's name, packed with its length behind one pointer,
// reads back whole at every length, the lengths whose uvarint takes one
// byte and two among them.
func TestFileName(t *testing.T) {
	for _, n := range []int{0, 1, 13, 127, 128, 255, 300, 4096, 70000} {
		name := strings.Repeat("n", n)
		if n > 0 {
			name = name[:n-1] + "z"
		}
		f := NewFile(name, 0, [][32]byte{{1}})
		if got := f.Name(); got != name {
			t.Fatalf("a name of %d bytes reads back as %d bytes", n, len(got))
		}
		if f.Path() != name {
			t.Fatalf("a single-file source's path is its name: %q", f.Path())
		}
	}
	d := NewDirFile("/etc/keytool/authorized_keys.d", "alice.jwk", 0, [][32]byte{{1}, {2}}, nil)
	if d.Name() != "alice.jwk" || d.Path() != filepath.Join("/etc/keytool/authorized_keys.d", "alice.jwk") || len(d.Items()) != 2 {
		t.Fatalf("a directory's file of two items: %q %q %d", d.Name(), d.Path(), len(d.Items()))
	}
}

// TestFileStateSize keeps the state of a file of a 32-byte item
// (authkeys' SPKI hash) within the allocator's 192-byte class: a cold
// load holds one for every file at once, from the listing to the fold —
// most of its live heap, which the collector's goal doubles into the
// load's peak resident set (docs/design.md, "Memory of a loaded store",
// step 6). It was 272 bytes, in the 288-byte class, with a feed entry's
// content, the file's name and a oneItem's room for it of its own.
func TestFileStateSize(t *testing.T) {
	if n := unsafe.Sizeof(fileState[[32]byte]{}); n > 192 {
		t.Fatalf("fileState of a 32-byte item is %d bytes, more than 192", n)
	}
}
