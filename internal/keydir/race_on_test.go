//go:build race

package keydir

// raceEnabled: the race detector is on, and internal/offheap keeps every
// array on the heap (where the detector sees it), so the tests of mapped
// memory run fewer steps there.
const raceEnabled = true
