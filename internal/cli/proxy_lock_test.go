//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package cli

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRemovalNotStoppedByAReaderOfTheDirectory: a local user who may
// only read the server's authorized_keys.d — 0755 under a home of 0755,
// as docs/deploy.md installs /etc/keytool — takes the advisory lock an
// older keytool's writers took on that directory (flock(2) on a
// descriptor opened for reading, which needs no more) and keeps it, and
// tries the lock file keytool's writers take now, which they may not
// open (as uid 65534 with util-linux flock(1) where the test is root, as
// CI is; else the test's own process holds the directory's lock).
// keytool authorize --remove of a client whose connection through
// keytool proxy is open removes the key at once, and the proxy closes
// the connection. Before: the removal waited for the lock for as long as
// the other user held it — the key stayed authorized, its connection
// open, for ever; then (review of 2026-12-03) for 10 s, after which it
// went ahead unlocked. That it does not wait at all is
// keydir.TestLockDirNotHeldByAnotherUser's.
func TestRemovalNotStoppedByAReaderOfTheDirectory(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	server, laptop := pxGen(t), pxGen(t)
	pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "laptop", filepath.Join(laptop, "pub_key.json"))
	dir := filepath.Join(server, "authorized_keys.d")
	for _, d := range []string{server, dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	px, addr := pxProxy(t, server, "--target", ln.Addr().String())
	pxMust(t, "", "keytool", "-H", laptop, "trust-host", addr, "--fingerprint", pxFingerprint(t, server))
	conn := pxStart(t, "keytool", "-H", laptop, "connect", addr)
	pxSay(t, conn, "one")

	if os.Geteuid() == 0 {
		holdAsAnotherUser(t, dir)
	} else {
		fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
	}
	// A bound on a hang.
	if o, e, code := pxRunStuck(t, time.Minute, nil, "", "keytool", "-H", server, "authorize", "--remove", "laptop"); code != 0 {
		t.Fatalf("authorize --remove: exit %d\n%s%s", code, o, e)
	}
	if _, err := os.Stat(filepath.Join(dir, "laptop.json")); !os.IsNotExist(err) {
		t.Errorf("laptop.json is still there: %v", err)
	}
	px.waitFor(t, `msg="closing: key no longer admitted" .*name=laptop`, 10*time.Second)
	select {
	case <-conn.done:
	case <-time.After(30 * time.Second): // a bound on a hang
		t.Error("keytool connect is still connected after its key was removed")
	}
}

// holdAsAnotherUser makes the test's directories down to dir searchable
// by others, then, as uid 65534 with util-linux flock(1): fails to open
// dir's lock file, and holds dir's own lock until the test ends.
func holdAsAnotherUser(t *testing.T, dir string) {
	t.Helper()
	searchableByOthers(t, dir)
	nobody := func(args ...string) *exec.Cmd {
		cmd := exec.Command("flock", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		return cmd
	}
	lock := filepath.Join(dir, ".keytool.lock")
	if _, err := os.Lstat(lock); err != nil {
		t.Fatalf("no lock file after authorize: %v", err)
	}
	if out, err := nobody("--nonblock", lock, "true").CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("flock(1) of the lock file as another user: %v, %s; want permission denied", err, out)
	}
	hold := nobody(dir, "sh", "-c", "echo held; exec cat")
	in, err := hold.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := hold.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); hold.Wait() })
	line := make([]byte, 5)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "held\n" {
		t.Fatalf("the other user's flock(1) of the directory: %q, %v", line, err)
	}
}

// searchableByOthers makes the test's directories above path (those under
// the system's temporary directory) searchable by other users: mode 0755.
func searchableByOthers(t *testing.T, path string) {
	t.Helper()
	top := filepath.Clean(os.TempDir()) + string(filepath.Separator)
	for d := filepath.Dir(path); strings.HasPrefix(d, top); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}
