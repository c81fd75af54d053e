package keydir

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A reload caused by file events holds back a file that fails to load
// while it looks half-written (Loader.holds), and the watcher reads it
// again once events are quiet. These tests prove that holding is bounded
// by the loader's own clock, not by anything a file carries: a malformed
// file is reported (a revocation file failing closed) within about a
// second, with the periodic rescan off, whatever its mtime says and
// however often it is rewritten. (Found by review: a file whose mtime was
// in the future looked "written moments ago" at every reload and was held
// until the rescan, forever with none.)

// putWithMtime writes data to a dot-file beside path (which loaders
// ignore), sets its mtime, and renames it over path: one Create event, as
// cp -p, rsync -t or tar followed by a rename make.
func putWithMtime(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	must(t, os.WriteFile(tmp, data, 0o644))
	must(t, os.Chtimes(tmp, mtime, mtime))
	must(t, os.Rename(tmp, path))
}

// waitFor polls cond every 10 ms for up to 5 s (a second of holding, the
// debounce, and a loaded machine's delays) and reports whether it held.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestHeldFileReportedDespiteFutureMtime: a malformed file whose mtime is
// in the future (cp -p or rsync -t from a host with a fast clock, a clock
// stepped back) is reported as a fresh load reports it, not held as if
// being written at every reload. A revocation file renamed in fails
// closed (RevocationErr); a key file rewritten in place stops trusting
// the key it held. The mtime "now" is the control: the same file written
// now is reported once it is a second old, as before.
func TestHeldFileReportedDespiteFutureMtime(t *testing.T) {
	for _, c := range []struct {
		name  string
		ahead time.Duration // of the mtime, over the clock
	}{{"now", 0}, {"future", time.Hour}} {
		t.Run("revocation/"+c.name, func(t *testing.T) {
			base := t.TempDir()
			auth, rev := filepath.Join(base, "authorized_keys.d"), filepath.Join(base, "revoked_keys.d")
			keydirtest.Put(t, filepath.Join(auth, "a.json"), keydirtest.JWK(t, key(t, 1)))
			keydirtest.Put(t, filepath.Join(rev, "old.json"), keydirtest.JWK(t, key(t, 2)))
			cfg := Config[string]{Convert: fpConvert, Rescan: -1, Sources: []Source{
				{Path: auth, Dir: true}, {Path: rev, Dir: true, Revocation: true},
			}}
			l := New(cfg)
			l.Watch(context.Background())
			t.Cleanup(func() { l.Close() })
			if err := l.Snapshot().RevocationErr; err != nil {
				t.Fatalf("at start: %v", err)
			}
			// A revocation of key 1 with a stray brace: it cannot be read.
			bad := append(keydirtest.JWK(t, key(t, 1)), '}')
			putWithMtime(t, filepath.Join(rev, "bob.json"), bad, time.Now().Add(c.ahead))
			if New(cfg).Reload().RevocationErr == nil {
				t.Fatal("a fresh load does not fail closed")
			}
			if !waitFor(func() bool { return l.Snapshot().RevocationErr != nil }) {
				t.Fatalf("mtime %v ahead: 5 s after a malformed revocation file came, the watching loader has no RevocationErr (a fresh load has); problems: %v", c.ahead, l.Snapshot().Problems)
			}
		})
		t.Run("authorized/"+c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "authorized_keys.d")
			keydirtest.Put(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
			keydirtest.Put(t, filepath.Join(dir, "b.json"), keydirtest.JWK(t, key(t, 2)))
			cfg := Config[string]{Convert: fpConvert, Rescan: -1, Sources: []Source{{Path: dir, Dir: true}}}
			l := New(cfg)
			l.Watch(context.Background())
			t.Cleanup(func() { l.Close() })
			// a.json edited in place and left with a typo (its mtime then
			// set ahead, as touch -d does).
			p := filepath.Join(dir, "a.json")
			keydirtest.WriteInPlace(t, p, []byte("{\"kty\": \n"))
			if c.ahead != 0 {
				mt := time.Now().Add(c.ahead)
				must(t, os.Chtimes(p, mt, mt))
			}
			only2 := want(t, key(t, 2))
			if !waitFor(func() bool {
				s := l.Snapshot()
				return slices.Equal(fingerprints(s), only2) && len(s.Problems) == 1 && s.Problems[0].Path == p
			}) {
				s := l.Snapshot()
				t.Fatalf("mtime %v ahead: 5 s after a.json was rewritten malformed, the watching loader trusts %d keys (a.json's old one included?), problems %v; a fresh load trusts %d", c.ahead, len(fingerprints(s)), s.Problems, len(fingerprints(New(cfg).Reload())))
			}
		})
	}
}

// TestHeldFileReportedWithinBoundWhileRewritten: a malformed revocation
// file rewritten in place every 100 ms for 4 s has an mtime a moment old
// at every reload; it is held back at most a second (the hold's bound,
// counted from its first hold: Loader.heldSince), then fails closed, and
// stays failed while the writes go on (held again, it keeps its reported
// row). Before, it was held for as long as the writes went on.
func TestHeldFileReportedWithinBoundWhileRewritten(t *testing.T) {
	rev := filepath.Join(t.TempDir(), "revoked_keys.d")
	keydirtest.Put(t, filepath.Join(rev, "old.json"), keydirtest.JWK(t, key(t, 2)))
	l := New(Config[string]{Convert: fpConvert, Rescan: -1, Sources: []Source{{Path: rev, Dir: true, Revocation: true}}})
	l.Watch(context.Background())
	t.Cleanup(func() { l.Close() })
	p := filepath.Join(rev, "bob.json")
	bad := append(keydirtest.JWK(t, key(t, 1)), '}')
	keydirtest.Write(t, p, bad)
	start := time.Now()
	var failedAt time.Duration
	for time.Since(start) < 4*time.Second {
		time.Sleep(100 * time.Millisecond)
		keydirtest.WriteInPlace(t, p, bad)
		failed := l.Snapshot().RevocationErr != nil
		switch {
		case failed && failedAt == 0:
			failedAt = time.Since(start)
		case !failed && failedAt != 0:
			t.Fatalf("failed closed at %v, then no longer at %v while the file stays malformed", failedAt, time.Since(start))
		}
	}
	if failedAt == 0 {
		t.Fatalf("rewritten malformed for 4 s, the revocation file was held back all along: no RevocationErr (problems %v)", l.Snapshot().Problems)
	}
	t.Logf("failed closed %v after the malformed file came", failedAt)
}

// TestHoldDecidedByLoaderClock: the two rules of Loader.holds, reload by
// reload, without the watcher's timing. A malformed file with an mtime
// of now is held back by a reload caused by events, and again by the
// next; one with an mtime in the future is not held at all; and a file
// first held holdFresh ago (heldSince, set back here rather than waited
// for) is not held again, though its mtime is a moment old.
func TestHoldDecidedByLoaderClock(t *testing.T) {
	rev := filepath.Join(t.TempDir(), "revoked_keys.d")
	keydirtest.Put(t, filepath.Join(rev, "old.json"), keydirtest.JWK(t, key(t, 2)))
	l := New(Config[string]{Convert: fpConvert, Rescan: -1, Sources: []Source{{Path: rev, Dir: true, Revocation: true}}})
	l.Reload()
	p := filepath.Join(rev, "bob.json")
	bad := append(keydirtest.JWK(t, key(t, 1)), '}')
	reload := func(step string, wantHeld bool) {
		t.Helper()
		held := l.reloadHolding(hints{paths: map[string]struct{}{p: {}}})
		if got := slices.Equal(held, []string{p}); got != wantHeld {
			t.Fatalf("%s: held %v, want held: %v", step, held, wantHeld)
		}
		if failed := l.Snapshot().RevocationErr != nil; failed == wantHeld {
			t.Fatalf("%s: RevocationErr set: %v, want: %v", step, failed, !wantHeld)
		}
	}
	putWithMtime(t, p, bad, time.Now())
	reload("written now", true)
	reload("written now, held a moment", true)
	l.heldSince[p] = time.Now().Add(-max(l.cfg.Debounce, time.Second))
	keydirtest.WriteInPlace(t, p, bad)
	reload("rewritten now, first held a second ago", false)
	reload("after being reported", false) // unchanged: no read, nothing held
	must(t, os.Remove(p))
	l.Reload()
	putWithMtime(t, p, bad, time.Now().Add(time.Hour))
	reload("mtime an hour ahead", false)
}
