//go:build (linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd) && !race

// Not under the race detector: it keeps shadow memory for the Go heap
// and data segments only, so reads and writes of a mapped array would go
// unchecked, and the -race tests that prove a published row or page is
// never written would prove nothing of them. A race build keeps every
// array on the heap (map_other.go).

package offheap

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapsMemory: New maps its large arrays here (take).
const mapsMemory = true

// mapMemory maps size bytes. Not through syscall.Mmap: it records each
// mapping in a map on the heap (for its Munmap to look up), an entry of
// about 60 bytes an array that every collection marks — 200 KB at a
// million single-key files, a quarter of what such a store kept on the
// heap (docs/benchmarks.md, "The collector at a million single-key files").
func mapMemory(size int) ([]byte, error) {
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), size), nil
}

func unmapMemory(mem []byte) error {
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(mem)), uintptr(len(mem)))
}
