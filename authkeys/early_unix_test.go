//go:build unix

package authkeys

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
)

// An admin index whose directory a reader holds the lock of (as an
// older keytool did): the reason logged is that, not a wait that never
// happened; and no index is said not written, since there is one.
func TestEarlySaysWhyNotLockedByAReader(t *testing.T) {
	opts := fillHome(t, 30)
	keydir.IndexMinFiles = 10
	_, finish := LoadFor(opts, Lookups{})
	finish()
	f, err := os.Open(filepath.Join(opts.Home, ".index"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	checkLog(t, startLog(opts),
		[]string{`msg="first clients wait for the full load"`, "could not be locked: another process holds the lock of "},
		[]string{"admin index not written", "keydir: keydir:", " past "})
}
