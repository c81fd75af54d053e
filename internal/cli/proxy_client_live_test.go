package cli

import (
	"bufio"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pxDialEcho connects to a plain TCP address (a client-mode proxy's) and
// checks that a line comes back.
func pxDialEcho(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	pxEchoLine(t, c, r, "hello")
	return c, r
}

// TestProxyClientLiveRevocation: two keytool proxy --client processes,
// each in front of a server-mode keytool proxy whose key the client's home
// pins, each carrying an open TCP stream. keytool trust-host --remove of
// the first server's address ends the stream through the first client
// proxy within a second (its closing line names the target and why); the
// stream through the second goes on.
func TestProxyClientLiveRevocation(t *testing.T) {
	client := pxGen(t)
	type through struct {
		target string
		proxy  *pxProc
		conn   net.Conn
		r      *bufio.Reader
	}
	var all []*through
	for range 2 {
		server := pxGen(t)
		pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "c", filepath.Join(client, "pub_key.json"))
		_, target := pxProxy(t, server, "--target", echoServer(t))
		pxMust(t, "", "keytool", "-H", client, "trust-host", target, "--key", filepath.Join(server, "pub_key.json"))
		p, addr := pxProxy(t, client, "--client", "--target", target)
		c, r := pxDialEcho(t, addr)
		all = append(all, &through{target, p, c, r})
	}
	one, two := all[0], all[1]

	pxMust(t, "", "keytool", "-H", client, "trust-host", "--remove", one.target)
	at := time.Now()
	_ = one.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := one.r.ReadByte(); err == nil {
		t.Fatalf("read %q on the stream to the unpinned server", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the stream to the unpinned server is still open after 10 s")
	}
	if took := time.Since(at); took > 1500*time.Millisecond {
		t.Errorf("the stream ended %v after trust-host --remove, want < 1 s (1.5 s for a busy machine)", took)
	}
	one.proxy.waitFor(t, `level=WARN msg="closing: key no longer admitted" remote=\S+ target=`+regexpQuote(one.target)+
		` fingerprint=\S+ trust=pinned reason="knownhosts: host `+regexpQuote(one.target)+` is unknown: no key is pinned for it`, 5*time.Second)

	time.Sleep(1200 * time.Millisecond) // a sweep later
	pxEchoLine(t, two.conn, two.r, "still here")
	if strings.Contains(two.proxy.stderr.String(), "closing") {
		t.Errorf("the second client proxy closed a connection:\n%s", two.proxy.stderr.String())
	}
}

// TestProxyClientReloadsIdentity: a running keytool proxy --client presents
// the client's new key from the next connection once its key file
// changes, while a connection made before goes on; a broken key file is
// refused, on the file change and on SIGHUP, and the key in use stays. The
// server-mode proxy's lines say which key each connection presented.
func TestProxyClientReloadsIdentity(t *testing.T) {
	client, server := pxGen(t), pxGen(t)
	pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "old", filepath.Join(client, "pub_key.json"))
	sp, target := pxProxy(t, server, "--target", echoServer(t))
	pxMust(t, "", "keytool", "-H", client, "trust-host", target, "--key", filepath.Join(server, "pub_key.json"))
	cp, addr := pxProxy(t, client, "--client", "--target", target)
	old := pxFingerprint(t, client)
	// count is how many connections the server proxy accepted from the key
	// fp (entry name).
	count := func(fp, name string) int {
		re := regexp.MustCompile(`msg=accepted remote=127\.0\.0\.1:\d+ fingerprint=` + regexpQuote(fp) + ` name=` + name + `\n`)
		return len(re.FindAllString(sp.stderr.String(), -1))
	}

	open, openR := pxDialEcho(t, addr)
	if n := count(old, "old"); n < 1 {
		t.Fatalf("the server did not accept the client's key %s:\n%s", old, sp.stderr.String())
	}

	// A broken key file: refused when it changes, and again on SIGHUP; the
	// next connection still presents the old key.
	restore := pxBreakKey(t, cp, client, old)
	before := count(old, "old")
	c, _ := pxDialEcho(t, addr)
	c.Close()
	if pxUntil(5*time.Second, func() bool { return count(old, "old") == before+1 }) < 0 {
		t.Fatalf("after a broken key file, the next connection did not present the old key %s:\n%s", old, sp.stderr.String())
	}
	restore()

	// A new key, authorized on the server: new connections present it, the
	// open one goes on.
	pxMust(t, "", "keytool", "-H", client, "gen", "--force")
	fresh := pxFingerprint(t, client)
	pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "new", filepath.Join(client, "pub_key.json"))
	cp.waitFor(t, `msg="identity reloaded" fingerprint=`+regexpQuote(fresh)+` previous=`+regexpQuote(old), 10*time.Second)
	c, _ = pxDialEcho(t, addr)
	c.Close()
	if pxUntil(5*time.Second, func() bool { return count(fresh, "new") == 1 }) < 0 {
		t.Fatalf("the client proxy did not present its new key %s:\n%s", fresh, sp.stderr.String())
	}
	pxEchoLine(t, open, openR, "still here")
	if strings.Contains(cp.stderr.String(), "closing") {
		t.Errorf("a connection was closed:\n%s", cp.stderr.String())
	}
}
