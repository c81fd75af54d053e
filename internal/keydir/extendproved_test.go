//go:build linux

package keydir

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A large revocation directory's stamp, recorded at the proof, is
// compared at every early decision, which reads of it only its aliased
// files: a revocation added that the watch did not report (an overflow
// it did not notice, a bug) still ends early decisions. The watch
// reports such a file first in practice, so the test takes its events
// away before the decision (found by review of session 30: with the
// comparison gone from asProved, every other test still passed).
func TestExtendProvedComparesARevocationDirectorysStamp(t *testing.T) {
	l, srcs, term := provedLoader(t)
	if !l.ExtendProved(term(1)) {
		t.Fatal("the first decision after the proof was not early")
	}
	added := filepath.Join(srcs[1], "new.json")
	keydirtest.Write(t, added, keydirtest.JWK(t, key(t, 2)))
	l.mu.Lock()
	fw := l.fw
	l.mu.Unlock()
	seen := false
	for quiet := time.After(5 * time.Second); ; {
		select {
		case ev := <-fw.Events():
			seen = seen || ev.Name == added
			if seen {
				quiet = time.After(200 * time.Millisecond)
			}
			continue
		case <-fw.Errors():
			t.Fatal("the watch failed")
		case <-quiet:
		}
		break
	}
	if !seen {
		t.Fatalf("no event for %s within 5 s", added)
	}
	if l.ExtendProved(term(2)) {
		t.Error("key 2, revoked by a file the watch did not report: still decided early")
	}
}

// An early decision's reload publishes a snapshot assembled from what it
// examined (editedSnapshot), not by comparing every source's list whole:
// with a large revocation directory read whole at the proof, that
// comparison was most of each decision's time (docs/benchmarks.md,
// "Early decisions"); a single file, examined at every decision, made
// every such reload whole. The snapshot must hold what one assembled
// whole does.
func TestExtendProvedEditsTheSnapshot(t *testing.T) {
	l, _, term := provedLoader(t)
	for n := 1; n < 6; n++ {
		prev := l.Snapshot()
		if !l.ExtendProved(term(n)) {
			t.Fatalf("key %d: not decided early", n)
		}
		next := l.Snapshot()
		if next.Generation == prev.Generation {
			t.Fatalf("key %d: no snapshot published for its file", n)
		}
		if !next.diffed {
			t.Errorf("key %d: the snapshot was assembled whole", n)
		}
		whole := l.wholeSnapshot()
		whole.numbers = next.numbers
		if !sameSnapshot(next, whole) {
			t.Fatalf("key %d: the snapshot differs from one assembled whole", n)
		}
	}
}

// provedLoader is a loader LoadProved for key 0: d0 of trust (keys 0–9)
// indexed, d1 of revocations (keys 100–109) large enough to be read
// whole at the proof (IndexMinFiles 5), and a single file of key 41; the
// files' stamps recorded however new. term is the query of key n.
func provedLoader(t *testing.T) (l *Loader[string], srcs []string, term func(n int) Query) {
	t.Helper()
	return provedLoaderAfter(t, nil)
}

// provedLoaderAfter is provedLoader, calling before (if not nil) with the
// sources' paths between the index's making and the proof.
func provedLoaderAfter(t *testing.T, before func(srcs []string)) (l *Loader[string], srcs []string, term func(n int) Query) {
	t.Helper()
	old := StampRacy
	StampRacy = 0
	t.Cleanup(func() { StampRacy = old })
	srcs, index := indexedDirs(t, 2, 10)
	single := filepath.Join(filepath.Dir(index), "authorized_keys")
	keydirtest.Write(t, single, keydirtest.JWK(t, key(t, 41)))
	term = func(n int) Query {
		return Query{Terms: []Term{KeyTerm(sha256.Sum256([]byte(key(t, n).Fingerprint())))}}
	}
	cfg := Config[string]{
		Sources: []Source{{Path: srcs[0], Dir: true}, {Path: srcs[1], Dir: true, Revocation: true}, {Path: single}},
		Index:   index, Home: filepath.Dir(index), Convert: fpConvert, Rescan: -1,
		Terms: func(f *File[string], i int) []Term { return []Term{KeyTerm(sha256.Sum256([]byte(f.Items()[i])))} },
	}
	first := New(cfg)
	write := first.IndexAfter(nil)
	first.Reload()
	if err := write(); err != nil {
		t.Fatal(err)
	}
	first.Close()
	if before != nil {
		before(srcs)
	}
	l = New(cfg)
	t.Cleanup(func() { l.Close() })
	if err := l.LoadProved(term(0)); err != nil {
		t.Fatal(err)
	}
	return l, srcs, term
}

// A directory inside a large revocation directory fails closed through
// an early decision's proof too, which reads that directory from its own
// listing (proveRevocations), as a full load does
// (TestRevocationSubdirectoryFailsClosed).
func TestRevocationSubdirectoryFailsClosedWhenProved(t *testing.T) {
	l, _, _ := provedLoaderAfter(t, func(srcs []string) {
		if err := os.Mkdir(filepath.Join(srcs[1], "old"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	if s := l.Snapshot(); !errors.Is(s.RevocationErr, ErrRevocationSubdirectory) {
		t.Fatalf("proved with a subdirectory in the revocation directory: RevocationErr = %v", s.RevocationErr)
	}
}
