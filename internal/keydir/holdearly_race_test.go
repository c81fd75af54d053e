package keydir

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestCompareBesideAnEarlyReload: the rescan's compare stats files
// without the lock while a reload applied the moment its event came runs
// (a file made untrusted by a chmod fails at its stat in both); whether a
// problem is held back is the reload's to say, which compare read from the
// loader as the reload wrote it — a data race under go test -race (found
// by review).
func TestCompareBesideAnEarlyReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	bad := filepath.Join(dir, "b.json")
	keydirtest.Write(t, bad, keydirtest.JWK(t, key(t, 2)))
	l := newLoader(Source{Path: dir, Dir: true})
	l.Reload()
	must(t, os.Chmod(bad, 0o666))
	stop := keydirtest.Repeat(1, func() { l.compare() })
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		l.reloadHolding(hints{early: true, paths: map[string]struct{}{bad: {}}})
	}
	stop()
}
