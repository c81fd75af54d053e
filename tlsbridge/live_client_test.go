package tlsbridge

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// echoServer is a TLS server on 127.0.0.1 that echoes each line on each
// connection until the client closes it; it lets every client in.
func echoServer(t *testing.T, h *home) string {
	t.Helper()
	srv, err := NewServer(h.id, ServerOptions{Clients: h.auth, AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	testnet.ServeEach(t, ln, func(c net.Conn) { _, _ = io.Copy(c, c) })
	return ln.Addr().String()
}

// liveClient is a Client whose pins are files in a home, watched, under
// live revocation.
type liveClient struct {
	opts  knownhosts.Options
	hosts *knownhosts.Store
	live  *LiveConns
	logs  *syncBuffer
}

func startLiveClient(t *testing.T) *liveClient {
	t.Helper()
	lc := &liveClient{opts: knownhosts.HomeOptions(t.TempDir()), logs: &syncBuffer{}}
	lc.opts.Debounce = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lc.hosts = knownhosts.Open(ctx, lc.opts)
	cli, err := NewClient(newHome(t, jwk.EC256).id, ClientOptions{Hosts: lc.hosts, Policy: Strict})
	if err != nil {
		t.Fatal(err)
	}
	lc.live = cli.Live(LiveOptions{Changes: lc.hosts, Logger: lc.logs.Logger()})
	t.Cleanup(func() { lc.live.Close() })
	return lc
}

// pin writes the pin of k for addr to trusted_hosts.d/name.json and waits
// until the store has it.
func (lc *liveClient) pin(t *testing.T, name, addr string, k *jwk.Key) string {
	t.Helper()
	file := filepath.Join(lc.opts.Dirs[0], name+".json")
	keydirtest.Put(t, file, keydirtest.JWK(t, keydirtest.WithAttrs(k.PublicKey(), jwk.AttrAddress, addr)))
	for deadline := time.Now().Add(hangBound); lc.hosts.Decide(addr, k.SPKIHash()).Verdict != knownhosts.Pinned; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s was not pinned from %s", addr, file)
		}
	}
	return file
}

// heldStream is a connection to a server, held open and read in the
// background; ended receives when it ended.
type heldStream struct {
	name  string
	conn  net.Conn
	lines chan string
	ended chan time.Time
}

func holdStream(t *testing.T, name string, conn net.Conn) *heldStream {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	s := &heldStream{name: name, conn: conn, lines: make(chan string, 16), ended: make(chan time.Time, 1)}
	go func() {
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				s.ended <- time.Now()
				return
			}
			s.lines <- line
		}
	}()
	s.echoes(t)
	return s
}

// echoes fails unless the stream echoes a line.
func (s *heldStream) echoes(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(s.conn, "ping\n"); err != nil {
		t.Fatalf("%s: write: %v", s.name, err)
	}
	select {
	case line := <-s.lines:
		if line != "ping\n" {
			t.Fatalf("%s: got %q", s.name, line)
		}
	case <-s.ended:
		t.Fatalf("%s ended", s.name)
	case <-time.After(hangBound):
		t.Fatalf("%s: no echo", s.name)
	}
}

func (s *heldStream) endedWithin(t *testing.T, since time.Time, d time.Duration) time.Duration {
	t.Helper()
	select {
	case at := <-s.ended:
		if took := at.Sub(since); took > d {
			t.Errorf("%s ended %v after the change, want < %v", s.name, took, d)
		}
		return at.Sub(since)
	case <-time.After(d + 2*time.Second):
		t.Fatalf("%s is still open %v after the change", s.name, d+2*time.Second)
		return 0
	}
}

// TestLiveConnsClient: a Go client holds streams open to two servers
// whose keys it pins in a watched trusted_hosts.d, through its
// LiveConns; the first server's key stops being trusted in one of the
// ways a host key can — its pin removed, the key revoked, another key
// pinned for the address, a revocation file turning unsafe — and the
// stream to it ends within a second, with a line naming the key, the
// address and why, while the stream to the other server still echoes
// (an unreadable revocation file refuses every host: both end).
func TestLiveConnsClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		do      func(t *testing.T, lc *liveClient, file, addr string, k *jwk.Key)
		reason  string
		allKeys bool
	}{
		{"unpinned", func(t *testing.T, lc *liveClient, file, addr string, k *jwk.Key) {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
		}, `is unknown: no key is pinned for it`, false},
		{"revoked", func(t *testing.T, lc *liveClient, file, addr string, k *jwk.Key) {
			keydirtest.Put(t, filepath.Join(lc.opts.RevokedDirs[0], "srv.json"), keydirtest.JWK(t, k.PublicKey()))
		}, `revoked`, false},
		{"pinned to another key", func(t *testing.T, lc *liveClient, file, addr string, k *jwk.Key) {
			keydirtest.Replace(t, file, keydirtest.JWK(t, keydirtest.WithAttrs(keydirtest.Key(t, 9), jwk.AttrAddress, addr)))
		}, `changed|another key|does not match`, false},
		{"revocation file unsafe", func(t *testing.T, lc *liveClient, file, addr string, k *jwk.Key) {
			if err := os.Chmod(filepath.Join(lc.opts.RevokedDirs[0], "other.json"), 0o666); err != nil {
				t.Fatal(err)
			}
		}, `other\.json`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lc := startLiveClient(t)
			keydirtest.Put(t, filepath.Join(lc.opts.RevokedDirs[0], "other.json"), keydirtest.JWK(t, keydirtest.Key(t, 7)))
			one, two := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
			addr1, addr2 := echoServer(t, one), echoServer(t, two)
			file := lc.pin(t, "one", addr1, one.id.Key)
			lc.pin(t, "two", addr2, two.id.Key)
			dial := func(addr string) net.Conn {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				c, err := lc.live.DialContext(ctx, "tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			s1, s2 := holdStream(t, "the stream to the first server", dial(addr1)), holdStream(t, "the stream to the other server", dial(addr2))

			tc.do(t, lc, file, addr1, one.id.Key)
			at := time.Now()
			t.Logf("ended %v after the change", s1.endedWithin(t, at, liveWithin))
			re := regexp.MustCompile(`level=WARN msg="closing: key no longer admitted" addr=` + regexp.QuoteMeta(addr1) + ` remote=` +
				regexp.QuoteMeta(addr1) + ` fingerprint=` + regexp.QuoteMeta(one.id.Key.Fingerprint()) + ` reason="knownhosts: .*(` + tc.reason + `)`)
			for deadline := time.Now().Add(hangBound); !re.MatchString(lc.logs.String()); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no line matches %s in:\n%s", re, lc.logs)
				}
			}
			if tc.allKeys {
				s2.endedWithin(t, at, liveWithin)
				return
			}
			time.Sleep(liveInterval + 200*time.Millisecond)
			s2.echoes(t)
			if n := strings.Count(lc.logs.String(), MsgNoLongerAdmitted); n != 1 {
				t.Errorf("%d connections closed, want one:\n%s", n, lc.logs)
			}
			if st := lc.live.Stats(); st.Tracked != 1 || st.Closed != 1 {
				t.Errorf("stats %+v, want 1 tracked and 1 closed", st)
			}
		})
	}
}

// TestLiveConnsClientTransport: an HTTP/2 stream made through
// LiveConns.Transport ends within a second of the server's pin being
// removed; a connection the program closes is no longer tracked.
func TestLiveConnsClientTransport(t *testing.T) {
	lc := startLiveClient(t)
	w := startLive(t) // an HTTP server streaming ticks to authorized clients
	me := newHome(t, jwk.EC256)
	cli, err := NewClient(me.id, ClientOptions{Hosts: lc.hosts, Policy: Strict})
	if err != nil {
		t.Fatal(err)
	}
	live := cli.Live(LiveOptions{Changes: lc.hosts, Logger: lc.logs.Logger()})
	defer live.Close()
	w.authorize(t, "me", me)
	file := lc.pin(t, "srv", w.addr, w.srv.id.Key)

	tr := live.Transport()
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + w.addr + "/once")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello me HTTP/2.0\n" {
		t.Fatalf("got %q", body)
	}
	tr.CloseIdleConnections()
	for deadline := time.Now().Add(hangBound); live.Stats().Tracked != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a connection closed by the program is still tracked: %+v", live.Stats())
		}
	}

	resp, err = (&http.Client{Transport: tr}).Get("https://" + w.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, err := r.ReadString('\n'); err != nil || line != "hello me HTTP/2.0\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	_, err = io.Copy(io.Discard, r)
	if took := time.Since(at); err == nil || took > liveWithin {
		t.Fatalf("the stream ended %v after the pin was removed, with %v; want an error within %v", took, err, liveWithin)
	}
	t.Logf("the HTTP/2 stream ended %v after the pin was removed", time.Since(at))
	if !strings.Contains(lc.logs.String(), fmt.Sprintf("addr=%s", w.addr)) {
		t.Errorf("no closing line for %s:\n%s", w.addr, lc.logs)
	}
}
