//go:build (linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd) && !race

// Not under the race detector: it keeps shadow memory for the Go heap
// and data segments only, so reads and writes of a mapped array would go
// unchecked, and the -race tests that prove a published row or page is
// never written would prove nothing of them. A race build keeps every
// array on the heap (map_other.go).

package offheap

import "syscall"

// mapsMemory: New maps its large arrays here (take).
const mapsMemory = true

func mapMemory(size int) ([]byte, error) {
	return syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

func unmapMemory(mem []byte) error { return syscall.Munmap(mem) }
