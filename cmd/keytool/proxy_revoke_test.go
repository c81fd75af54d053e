package main

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProxyLiveRevocation: two keytool proxy processes in front of one
// TCP echo server, one with --keep-open-on-revoke; keytool connect
// processes hold connections open through them. keytool revoke of
// laptop's key ends laptop's connection through the first proxy within a
// second (keytool connect exits), with the closing line naming the key;
// desk's connection through it still echoes, and so does laptop's through
// the proxy that keeps connections open.
func TestProxyLiveRevocation(t *testing.T) {
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
	server, laptop, desk := pxGen(t), pxGen(t), pxGen(t)
	for name, home := range map[string]string{"laptop": laptop, "desk": desk} {
		pxMust(t, "", "keytool", "-H", server, "authorize", "--name", name, filepath.Join(home, "pub_key.json"))
	}
	live, liveAddr := pxProxy(t, server, "--target", ln.Addr().String())
	keep, keepAddr := pxProxy(t, server, "--target", ln.Addr().String(), "--keep-open-on-revoke")
	serverFP := pxFingerprint(t, server)
	for _, home := range []string{laptop, desk} {
		for _, addr := range []string{liveAddr, keepAddr} {
			pxMust(t, "", "keytool", "-H", home, "trust-host", addr, "--fingerprint", serverFP)
		}
	}
	connect := func(home, addr, word string) *pxProc {
		p := pxStart(t, "keytool", "-H", home, "connect", addr)
		pxSay(t, p, word)
		return p
	}
	laptopLive := connect(laptop, liveAddr, "one")
	laptopKept := connect(laptop, keepAddr, "two")
	deskLive := connect(desk, liveAddr, "three")

	pxMust(t, "", "keytool", "-H", server, "revoke", filepath.Join(laptop, "pub_key.json"))
	at := time.Now()
	select {
	case <-laptopLive.done:
		if d := time.Since(at); d > 1500*time.Millisecond {
			t.Errorf("keytool connect ended %v after the revocation, want < 1.5s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("laptop's connection is still open 5s after its key was revoked\n%s", live.stderr.String())
	}
	live.waitFor(t, `level=WARN msg="closing: key no longer admitted" remote=127\.0\.0\.1:\d+ fingerprint=`+regexpQuote(pxFingerprint(t, laptop))+` name=laptop reason="authkeys: key \S+ is revoked`, 5*time.Second)

	time.Sleep(1200 * time.Millisecond) // a sweep of the open connections later
	pxSay(t, deskLive, "four")
	pxSay(t, laptopKept, "five")
	if n := strings.Count(live.stderr.String(), "closing: key no longer admitted"); n != 1 {
		t.Errorf("%d connections closed, want laptop's one:\n%s", n, live.stderr.String())
	}
	if strings.Contains(keep.stderr.String(), "closing:") {
		t.Errorf("--keep-open-on-revoke closed a connection:\n%s", keep.stderr.String())
	}
}

// pxSay writes a word to keytool connect's input and waits for its echo.
func pxSay(t *testing.T, p *pxProc, word string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, word+"\n"); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, `(?m)^`+word+`$`, 10*time.Second)
}
