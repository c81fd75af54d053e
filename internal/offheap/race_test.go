//go:build race

package offheap

import "testing"

// TestRaceSeesArrays: a race build keeps arrays on the heap, where the
// race detector sees their reads and writes — it keeps no shadow of
// mapped memory, so the -race tests that prove a published row or page is
// never written (internal/keydir's TestSnapshotsStayAsPublished, authkeys'
// TestDecideBesideReloads) would check nothing of them (found by review).
func TestRaceSeesArrays(t *testing.T) {
	if a := New[uint64](MinMapped); a.esize != 0 {
		t.Fatalf("New(%d) mapped outside the heap in a race build: races on it would go unreported", MinMapped)
	}
}
