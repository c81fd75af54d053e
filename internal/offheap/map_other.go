//go:build !(linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd) || race

package offheap

import "errors"

// mapsMemory: New keeps every array on the heap here, where the
// collector's own pace counts it (take).
const mapsMemory = false

var errNoMap = errors.New("offheap: no anonymous mappings on this system, or a race build")

func mapMemory(int) ([]byte, error) { return nil, errNoMap }

func unmapMemory([]byte) error { return errNoMap }
