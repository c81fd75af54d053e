package authkeys

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Two servers on one home (two stores of one authorized_keys.d, as two
// processes) authorizing the next keys a client announces at once keep
// the name to MaxNextKeys such keys between them: the bound is counted
// under the directory's lock, on the files as they are, in the step that
// writes. Before (found by review, 2026-12-05), AcceptRotation counted
// the name's next keys on its own store's snapshot and then wrote: each
// server found room, and together they authorized 2×MaxNextKeys keys for
// one name, the certificate-per-connection client the bound is for.
func TestAcceptRotationBoundAcrossStores(t *testing.T) {
	home := t.TempDir()
	s1, e := acceptingAlice(t, home)
	s2 := Load(HomeOptions(home))
	t.Cleanup(func() { s2.Close() })
	e2, err := s2.LookupKey(key(t, 1), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	const each = 2 * MaxNextKeys
	var wg sync.WaitGroup
	var mu sync.Mutex
	var unexpected []error
	for i := range 2 * each {
		s, ent := s1, e
		if i%2 == 1 {
			s, ent = s2, e2
		}
		next := key(t, 2+i)
		wg.Go(func() {
			_, err := s.AcceptRotation(ent, next)
			var limit *NextKeysLimitError
			if err != nil && !errors.As(err, &limit) {
				mu.Lock()
				unexpected = append(unexpected, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("refused for another reason than the bound: %v", unexpected)
	}
	files, err := filepath.Glob(filepath.Join(home, "authorized_keys.d", "alice+*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != MaxNextKeys {
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = filepath.Base(f)
		}
		t.Fatalf("%d next keys authorized for alice, want %d: %s", len(files), MaxNextKeys, strings.Join(names, " "))
	}
}
