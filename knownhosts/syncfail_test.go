package knownhosts

import (
	"errors"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/jwk"
)

// A pin's file removed, its directory not synced: the removal says so
// (*atomicfile.UnsyncedError), by address and by fingerprint — not "no host
// key is pinned" (found by review).
func TestRemoveSaysItsDirectoryWasNotSynced(t *testing.T) {
	for _, q := range []string{"a.example:1", "fp"} {
		s, _ := load(t, map[string]*jwk.Key{"a.json": pinned(t, 1, "a.example:1")})
		if q == "fp" {
			q = key(t, 1).Fingerprint()
		}
		old := atomicfile.SyncDir
		atomicfile.SyncDir = func(string) error { return errors.New("the disk is gone") }
		rs := s.RemoveAll([]string{q})
		atomicfile.SyncDir = old
		if !errors.As(rs[0].Err, new(*atomicfile.UnsyncedError)) || !strings.Contains(rs[0].Err.Error(), "the disk is gone") {
			t.Errorf("RemoveAll(%s) with a failed directory sync: %+v; want the sync's error", q, rs[0])
		}
	}
}

// The same of a pin that keeps other addresses: rewritten, not removed,
// the write's own sync failing (found by review).
func TestRemoveAnAddressSaysItsDirectoryWasNotSynced(t *testing.T) {
	s, _ := load(t, map[string]*jwk.Key{"a.json": pinned(t, 1, "a.example:1", "b.example:1")})
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(string) error { return errors.New("the disk is gone") }
	rs := s.RemoveAll([]string{"a.example:1"})
	if !errors.As(rs[0].Err, new(*atomicfile.UnsyncedError)) || !strings.Contains(rs[0].Err.Error(), "the disk is gone") {
		t.Errorf("RemoveAll(a.example:1), the pin rewritten, the directory not synced: %+v, want an *atomicfile.UnsyncedError", rs[0])
	}
}
