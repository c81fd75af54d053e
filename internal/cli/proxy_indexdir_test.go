//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package cli

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// TestProxyIndexDir: docs/deploy.md's layout — the home root's and
// read-only to the proxy's user, but for its identity; the admin's
// authorize keeps the index in HOME/.index, root's — with 1,001
// authorized keys, the proxy run as another user (uid 65534). It cannot
// use the home's index: its first clients wait for the full load at every
// start, and it says so, with the flag that mends it. With --index-dir
// DIR it writes an index of its own there after its first full load, and
// its next start proves that index and decides early: it no longer says
// that its first clients wait.
func TestProxyIndexDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED, NOT PASSED: running the proxy as another user needs root (CI runs as root)")
	}
	server, laptop := pxGen(t), pxGen(t)
	dir := filepath.Join(server, "authorized_keys.d")
	pxAuthorizeMany(t, dir, 1000)
	pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "laptop", filepath.Join(laptop, "pub_key.json"))
	if _, err := os.Stat(filepath.Join(server, ".index")); err != nil {
		t.Fatalf("authorize beside 1,000 keys made no admin index: %v", err)
	}
	for _, d := range []string{server, dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(server, "key.json"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "bin")
	keytool := filepath.Join(bin, "keytool") // the test binary, which runs keytool by that name
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, self, keytool)
	searchableByOthers(t, keytool)
	searchableByOthers(t, dir)
	cache := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cache, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	searchableByOthers(t, cache)

	index := filepath.Join(cache, "keytool")
	heads := func() []string {
		heads, _ := filepath.Glob(filepath.Join(index, "*", "head"))
		return heads
	}
	// start runs the proxy as uid 65534 until its full load, then stops
	// it (it writes its index first: TestProxyWritesItsIndexBeforeExiting)
	// and returns its log.
	start := func(args ...string) string {
		t.Helper()
		args = append([]string{"-H", server, "proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9"}, args...)
		p := pxStartAs(t, 65534, keytool, args...)
		p.waitFor(t, `msg=identity `, 30*time.Second)
		return p.terminate(t, 30*time.Second)
	}
	const waits = `msg="first clients wait for the full load"`
	log := start()
	for _, want := range []string{waits, "advice=", "--index-dir DIR"} {
		if !strings.Contains(log, want) {
			t.Errorf("without --index-dir, the log lacks %q:\n%s", want, log)
		}
	}
	// A file changed within keydir.StampRacy of an index's writing gets
	// no stamp in it, and is read by every proof; the files of a home in
	// service are older.
	time.Sleep(keydir.StampRacy)
	log = start("--index-dir", index)
	if !strings.Contains(log, waits) || !strings.Contains(log, "no admin index yet") || strings.Contains(log, "advice=") {
		t.Errorf("the first start with --index-dir: want %s (no admin index yet), no advice:\n%s", waits, log)
	}
	if h := heads(); len(h) != 1 {
		t.Fatalf("%s holds %d heads after the first start, want 1", index, len(h))
	}
	if fi, err := os.Stat(heads()[0]); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("the index's head: %v, want the proxy's user's", err)
	}
	log = start("--index-dir", index)
	if strings.Contains(log, waits) {
		t.Errorf("the next start with --index-dir did not decide early from its own index:\n%s", log)
	}
}

// pxStartAs is pxStart, running program as the user and group uid.
func pxStartAs(t *testing.T, uid uint32, program string, args ...string) *pxProc {
	t.Helper()
	return pxLaunch(t, program, args, func(cmd *exec.Cmd) {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: uid}
	})
}

// copyFile copies the file from to to, executable.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestProxyWritesItsIndexBeforeExiting: a proxy stopped just after its
// full load, while it writes the admin index for its next start, waits
// for the write before it exits; its next start decides early. Before,
// it exited at once, leaving no index (the write takes 1.5–2 s at
// 100,000 files), and its next start read every file first again. Here
// the test holds the index's lock, as an admin command would, so that the
// write is still waiting when the proxy is stopped.
func TestProxyWritesItsIndexBeforeExiting(t *testing.T) {
	server := pxGen(t)
	pxAuthorizeMany(t, filepath.Join(server, "authorized_keys.d"), 1000)
	time.Sleep(keydir.StampRacy) // the files of a home in service are older (TestProxyIndexDir)
	index := filepath.Join(server, ".index")
	if err := os.Mkdir(index, 0o700); err != nil {
		t.Fatal(err)
	}
	// lockIndex holds the index's lock, as an admin command would.
	lockIndex := func() (unlock func()) {
		t.Helper()
		unlock, held, err := keydir.LockFile(filepath.Join(index, ".keytool.lock"))
		if err != nil || !held {
			t.Fatalf("taking the index's lock: held %v, %v", held, err)
		}
		t.Cleanup(unlock)
		return unlock
	}
	unlock := lockIndex()
	args := []string{"-H", server, "proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:9"}
	p := pxStart(t, "keytool", args...)
	p.waitFor(t, `msg=identity `, 30*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, `msg="writing the admin index before exiting`, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	select {
	case <-p.done:
		t.Fatalf("the proxy exited while its index waited for the lock:\n%s", p.stderr.String())
	default:
	}
	unlock()
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d once its index was written:\n%s", code, p.stderr.String())
	}
	if heads, _ := filepath.Glob(filepath.Join(index, "*", "head")); len(heads) != 1 {
		t.Fatalf("%d index heads after the stop, want 1:\n%s", len(heads), p.stderr.String())
	}
	p = pxStart(t, "keytool", args...)
	p.waitFor(t, `msg=identity `, 30*time.Second)
	if log := p.terminate(t, 30*time.Second); strings.Contains(log, "first clients wait") || strings.Contains(log, "writing the admin index") {
		t.Errorf("the next start did not decide early from the index, or wrote it again:\n%s", log)
	}

	// An index that exists is not written again: a proxy stopped while an
	// admin command holds the index's lock exits at once, where it waited
	// for the lock (up to 10 s) with nothing to write.
	lockIndex()
	p = pxStart(t, "keytool", args...)
	p.waitFor(t, `msg=identity `, 30*time.Second)
	if log := p.terminate(t, 5*time.Second); strings.Contains(log, "writing the admin index") {
		t.Errorf("a proxy with nothing to write said it was writing the index:\n%s", log)
	}
}

// pxAuthorizeMany writes n Ed25519 public keys into the directory dir.
func pxAuthorizeMany(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		k, err := jwk.Generate(jwk.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := k.MarshalPublic(jwk.JWK)
		if err != nil {
			t.Fatal(err)
		}
		pxWrite(t, filepath.Join(dir, "k"+strconv.Itoa(i)+".json"), string(pub))
	}
}
