//go:build unix

package keydir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A revocation file created group-writable (umask 002) and tightened
// with chmod at once by the tool that writes it (Python's open then
// os.chmod) must not make a published snapshot refuse everyone: the
// reload applied the moment the file appeared finds it still failing the
// trust-file rule, and holds it back (Loader.holdEarly) until events are
// quiet. (Found by review: without the hold, 5 to 9 snapshots of 20.)
func TestEarlyReloadHoldsAFileNotYetTightened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "revoked_keys.d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	failed, published := 0, 0
	l := New(Config[string]{
		Sources: []Source{{Path: dir, Dir: true, Revocation: true}},
		Convert: fpConvert, Debounce: 50 * time.Millisecond, Rescan: -1,
		OnReload: func(s *Snapshot[string]) {
			mu.Lock()
			defer mu.Unlock()
			published++
			if s.RevocationErr != nil {
				failed++
			}
		},
	})
	l.Watch(context.Background())
	defer l.Close()
	for i := range 10 {
		time.Sleep(100 * time.Millisecond)
		p := filepath.Join(dir, "r"+string(rune('a'+i))+".json")
		old := syscall.Umask(0o002) // Debian/Ubuntu's default for users
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o666)
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Write(keydirtest.JWK(t, key(t, i+1)))
		if err == nil {
			err = f.Chmod(0o600)
		}
		if err := errors.Join(err, f.Close()); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(fingerprints(l.Snapshot())) < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := l.Snapshot(); len(fingerprints(s)) != 10 || s.RevocationErr != nil {
		t.Errorf("once written: %d revocations, revocation error %v; want all 10 and none", len(fingerprints(s)), s.RevocationErr)
	}
	mu.Lock()
	defer mu.Unlock()
	if failed > 0 {
		t.Errorf("%d of %d published snapshots refused everyone (RevocationErr) while a revocation file was being written", failed, published)
	}
}
