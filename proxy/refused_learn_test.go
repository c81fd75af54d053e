package proxy

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// TestRefusedPeersLearnNothing: what a refused client receives from a
// server-mode proxy in TCP mode — its key revoked, its entry expired, its
// entry's "from" not its network, its key unknown (without Enroll) —
// with and without Enroll (tlsbridge.ServerOptions.AllowUnknown, under
// which all but the revoked key finish the handshake): no byte of
// application data, only a TLS alert or the end of the stream, and
// nothing in what its TLS stack reports of the server's files, entries
// or commands; the target is never connected to. (An unknown key under
// Enroll is served enrollment: TestServerEnrollmentNoHTTP.) Review of
// 2026-12-03 (docs/security.md): held.
func TestRefusedPeersLearnNothing(t *testing.T) {
	var accepted atomic.Int32
	target := listen(t)
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { target.Close() })

	for _, enroll := range []bool{false, true} {
		home := t.TempDir()
		opts := authkeys.HomeOptions(home)
		opts.Debounce = 5 * time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		store := authkeys.Open(ctx, opts)
		srv := newSide(t)
		tlsSrv, err := tlsbridge.NewServer(srv.id, tlsbridge.ServerOptions{Clients: store, AllowUnknown: enroll})
		if err != nil {
			t.Fatal(err)
		}
		so := ServerOptions{TLS: tlsSrv, Store: store}
		if enroll {
			so.Enroll = http.NotFoundHandler()
		}
		_, addr, logs, _ := startServer(t, srv, target.Addr().String(), so)

		peers := map[string]*side{}
		put := func(name string, verdict authkeys.Verdict, kv ...string) {
			c := newSide(t)
			peers[name] = c
			k := keydirtest.WithAttrs(c.id.Key.PublicKey(), append([]string{jwk.AttrName, name}, kv...)...)
			keydirtest.Put(t, filepath.Join(opts.Dirs[0], name+".json"), keydirtest.JWK(t, k))
			if verdict == authkeys.Revoked {
				keydirtest.Put(t, filepath.Join(opts.RevokedDirs[0], name+".json"), keydirtest.JWK(t, k))
			}
			for deadline := time.Now().Add(30 * time.Second); store.Decide(c.id.Key.SPKIHash(), netip127).Verdict != verdict; time.Sleep(5 * time.Millisecond) { // a bound on a hang
				if time.Now().After(deadline) {
					t.Fatalf("%s: not %v in 30 s", name, verdict)
				}
			}
		}
		put("entry-revoked", authkeys.Revoked)
		put("entry-expired", authkeys.Expired, jwk.AttrExpires, "2020-01-01T00:00:00Z")
		put("entry-from", authkeys.WrongNetwork, jwk.AttrFrom, "192.0.2.0/24")
		if !enroll {
			peers["unknown"] = newSide(t)
		}
		for name, c := range peers {
			c.pin(t, addr, srv)
			dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
			conn, err := c.tlsClient(t).DialContext(dctx, "tcp", addr)
			dcancel()
			var got []byte
			if err == nil {
				_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
				got, err = io.ReadAll(conn)
				conn.Close()
			}
			said := ""
			if err != nil {
				said = err.Error()
			}
			if len(got) > 0 {
				t.Errorf("enroll=%v, %s: received %q", enroll, name, got)
			}
			for _, leak := range []string{home, "entry-", ".json", "keytool", "authorized", "revoked_keys"} {
				if strings.Contains(said, leak) {
					t.Errorf("enroll=%v, %s: the client's TLS stack says %q, which names %q", enroll, name, said, leak)
				}
			}
			logs.waitFor(t, `fingerprint=`+regexp.QuoteMeta(c.id.Key.Fingerprint()))
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the target was connected to %d times by refused clients", n)
	}
}
