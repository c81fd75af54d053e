package cli

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestConnectLiveRevocation: keytool connect holds a stream open to each
// of two OpenSSL s_server processes whose keys its home pins; 'keytool
// trust-host --remove' of the first server's address ends that stream
// within a second (connect exits 1 naming the address, the key and why),
// while the stream to the second server still carries data both ways.
func TestConnectLiveRevocation(t *testing.T) {
	pxNeed(t, "openssl")
	dir := t.TempDir()
	client := newClientHome(t)
	server := func(name string) (*pxProc, string, string) {
		crt, key, spki := pxOpenSSLKey(t, dir, name)
		p := pxStart(t, "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", crt, "-key", key, "-verify", "1")
		addr := p.waitFor(t, `ACCEPT (127\.0\.0\.1:\d+)\n`, 10*time.Second)[1]
		pxMust(t, "", "keytool", "-H", client, "trust-host", addr, "--fingerprint", "sha256//"+spki)
		return p, addr, spki
	}
	one, addr1, spki1 := server("one")
	two, addr2, _ := server("two")

	// hold connects and checks that the stream carries data both ways.
	hold := func(s *pxProc, addr, word string) *pxProc {
		c := pxStart(t, "keytool", "-H", client, "connect", addr)
		if _, err := io.WriteString(c.stdin, word+" from the client\n"); err != nil {
			t.Fatal(err)
		}
		s.waitFor(t, word+" from the client", 10*time.Second)
		if _, err := io.WriteString(s.stdin, word+" from the server\n"); err != nil {
			t.Fatal(err)
		}
		c.waitFor(t, word+" from the server", 10*time.Second)
		return c
	}
	c1 := hold(one, addr1, "one")
	c2 := hold(two, addr2, "two")

	pxMust(t, "", "keytool", "-H", client, "trust-host", "--remove", addr1)
	at := time.Now()
	code := c1.wait(t, 5*time.Second)
	if took := time.Since(at); took > 1500*time.Millisecond {
		t.Errorf("keytool connect ended %v after the pin was removed, want < 1.5s", took)
	}
	e := c1.stderr.String()
	want := "keytool connect: closed the connection to " + addr1 + ": its key SHA256:" + strings.TrimRight(spki1, "=") + " is no longer trusted"
	if code != 1 || !strings.Contains(e, want) || !strings.Contains(e, "(knownhosts: host "+addr1+" is unknown: no key is pinned for it") {
		t.Errorf("exit status %d, want 1 and a line starting %q; stderr:\n%s", code, want, e)
	}

	time.Sleep(1200 * time.Millisecond) // a sweep later
	if _, err := io.WriteString(c2.stdin, "still there\n"); err != nil {
		t.Fatal(err)
	}
	two.waitFor(t, "still there", 10*time.Second)
	if _, err := io.WriteString(two.stdin, "still here\n"); err != nil {
		t.Fatal(err)
	}
	c2.waitFor(t, "still here", 10*time.Second)
}
