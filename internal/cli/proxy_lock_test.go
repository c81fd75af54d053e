//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package cli

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRemovalNotStoppedByAReaderOfTheDirectory: a local user who may
// only read the server's authorized_keys.d — 0755 under a home of 0755,
// as docs/deploy.md installs /etc/keytool — takes the advisory lock
// keytool's writers take on that directory (flock(2) on a descriptor
// opened for reading, which needs no more) and keeps it. keytool
// authorize --remove of a client whose connection through keytool proxy
// is open still removes the key, and the proxy closes the connection.
// Before: the removal waited for the lock for as long as the other user
// held it — the key stayed authorized, its connection open, for ever.
// (The lock is taken here by the test's own process, on a descriptor of
// its own; the review also took it as nobody, with util-linux flock(1).)
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

	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// A bound on a hang: the removal waits a while for the lock, then
	// goes on without it.
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
