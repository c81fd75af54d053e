package keydir

import (
	"testing"
	"unsafe"
)

// TestFileStateSize keeps the per-file state in its 112-byte allocation
// class: a directory of a million keys holds a million of them
// (docs/design.md, "Memory of a loaded store").
func TestFileStateSize(t *testing.T) {
	if n := unsafe.Sizeof(fileState[*int]{}); n > 112 {
		t.Fatalf("fileState is %d bytes, more than 112", n)
	}
}

// TestFileStateName checks that the name kept as an offset into the path
// is the name given, for every kind of source.
func TestFileStateName(t *testing.T) {
	for _, c := range []struct{ name, path string }{
		{"a.json", "/keys/authorized_keys.d/a.json"},                 // a directory's file
		{"/keys/authorized_keys.json", "/keys/authorized_keys.json"}, // a single-file source
		{"x", "etcd:/prefix/x"},                                      // a feed's entry
	} {
		if got := newFileState[*int](0, c.name, c.path).name(); got != c.name {
			t.Errorf("name of %q = %q, want %q", c.path, got, c.name)
		}
	}
}
