package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A FIFO where gen looks for an identity — the home's key.json, or the
// file -i names — is refused like any file there, and naming the key it
// holds (describeKeyFile) does not wait for a writer that never comes:
// the one bounded reader opens it without blocking and refuses it, so the
// refusal names the file alone. An open that blocks is no slowness: the
// command would wait forever, so it is killed after a minute — a limit no
// working gen comes near — and the failure says whether it hung opening
// the FIFO.
func TestGenRefusesFIFOIdentity(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	homeKey, named := filepath.Join(home, "key.json"), filepath.Join(t.TempDir(), "id.json")
	keydirtest.Mkfifo(t, homeKey, 0o600)
	keydirtest.Mkfifo(t, named, 0o600)
	for _, tc := range []struct {
		args []string
		fifo string
	}{{[]string{"gen"}, homeKey}, {[]string{"-i", named, "gen"}, named}} {
		args := append([]string{"-H", home}, tc.args...)
		_, stderr, code := pxRunStuck(t, 60*time.Second, readerWaits(tc.fifo), "", "keytool", args...)
		if code != 1 || !strings.Contains(stderr, "an identity already exists: "+tc.fifo+"; keep it") {
			t.Errorf("keytool %s with a FIFO at %s: exit %d, stderr %q; want exit 1 naming it as the identity",
				strings.Join(tc.args, " "), tc.fifo, code, stderr)
		}
	}
}

// readerWaits says, for pxRunStuck, whether a process holds fifo open for
// reading — a command stuck in a blocking open of it, waiting for a
// writer, since a working one opens it without blocking and closes it at
// once. A non-blocking open for writing succeeds exactly then (ENXIO
// when no one reads), and lets that open return.
func readerWaits(fifo string) func() string {
	return func() string {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Sprintf(", not waiting in an open of %s (opening it for writing: %v)", fifo, err)
		}
		f.Close()
		return ": it blocked opening the FIFO " + fifo + " for reading, waiting for a writer"
	}
}
