package cli

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// rolloverServer is a keytool TLS server on one 127.0.0.1 address that
// presents, on each new connection, the key of the identity Present chose
// — a host in the middle of a key rollover, or an impostor — authorizing
// the client key of clientHome and echoing what it reads.
type rolloverServer struct {
	addr    string
	keys    []*jwk.Key
	configs []*tls.Config
	present atomic.Int32
}

func newRolloverServer(t *testing.T, clientHome string, n int) *rolloverServer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(clientHome, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	serverHome := t.TempDir()
	pxWrite(t, filepath.Join(serverHome, "authorized_keys.d", "laptop.json"), string(data))
	clients := authkeys.Load(authkeys.HomeOptions(serverHome))
	if p := clients.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	s := &rolloverServer{}
	for range n {
		k, err := jwk.Generate(jwk.EC256)
		if err != nil {
			t.Fatal(err)
		}
		id, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: clients})
		if err != nil {
			t.Fatal(err)
		}
		s.keys = append(s.keys, k)
		s.configs = append(s.configs, srv.TLSConfig())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s.addr = ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, s.configs[s.present.Load()])
				defer tc.Close()
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() == nil {
					_, _ = io.Copy(tc, tc)
				}
			}()
		}
	}()
	return s
}

// TestTrustHostAddRollover: a client with two keys pinned for one address
// (trust-host --add --fingerprint, which connects) connects to the server
// presenting either; a third key is still the changed-key refusal naming
// both pins; once the old key is unpinned, only the new one connects.
func TestTrustHostAddRollover(t *testing.T) {
	client := newClientHome(t)
	srv := newRolloverServer(t, client, 3)
	old, nw, evil := srv.keys[0], srv.keys[1], srv.keys[2]
	connect := func(i int32) (string, string, int) {
		t.Helper()
		srv.present.Store(i)
		return pxRun(t, "ping\n", "keytool", "-H", client, "connect", srv.addr)
	}

	srv.present.Store(0)
	if o, e, code := keytoolIn(t, client, "trust-host", srv.addr, "--fingerprint", old.Fingerprint()); code != 0 {
		t.Fatalf("pinning the old key: exit %d\n%s%s", code, o, e)
	}
	if o, e, code := connect(0); code != 0 || o != "ping\n" {
		t.Fatalf("connect to the old key: exit %d, %q\n%s", code, o, e)
	}

	// The server now presents its new key. Without --add: the changed-key
	// refusal, whose advice offers --add.
	srv.present.Store(1)
	_, e, code := keytoolIn(t, client, "trust-host", srv.addr, "--fingerprint", nw.Fingerprint())
	if code != 1 || !strings.Contains(e, "has changed!") || !strings.Contains(e, "trust-host "+srv.addr+" --add --fingerprint "+nw.Fingerprint()) {
		t.Fatalf("the new key without --add: exit %d\n%s", code, e)
	}
	// --add with a fingerprint that is not the presented key's: nothing saved.
	_, e, code = keytoolIn(t, client, "trust-host", srv.addr, "--add", "--fingerprint", evil.Fingerprint())
	if code != 1 || !strings.Contains(e, "nothing saved") {
		t.Fatalf("--add with a wrong fingerprint: exit %d\n%s", code, e)
	}
	ents, _ := keyDirEntries(filepath.Join(client, "trusted_hosts.d"))
	if len(ents) != 1 {
		t.Fatalf("trusted_hosts.d holds %d files after a refused --add, want 1", len(ents))
	}
	// --add with the announced fingerprint: pinned beside the old key.
	o, e, code := keytoolIn(t, client, "trust-host", srv.addr, "--add", "--fingerprint", nw.KeyID())
	name, _ := knownhosts.AnotherFileName(srv.addr, nw)
	if code != 0 || !strings.Contains(o, "Pinned "+keyPhrase(nw)+" for "+srv.addr+" in "+filepath.Join(client, "trusted_hosts.d", name)) {
		t.Fatalf("--add --fingerprint: exit %d\n%s%s", code, o, e)
	}
	if k := pinnedKey(t, client, srv.addr); k == nil || !k.Equal(old) {
		t.Fatal("the old pin changed")
	}

	// Both keys connect; a third is refused, naming both pins.
	for i := range int32(2) {
		if o, e, code := connect(i); code != 0 || o != "ping\n" {
			t.Errorf("connect to key %d: exit %d, %q\n%s", i, code, o, e)
		}
	}
	o, e, code = connect(2)
	if code != 1 || o != "" || !strings.Contains(e, "has changed!") || !strings.Contains(e, "it presented now:  "+evil.Fingerprint()) ||
		!strings.Contains(e, "pinned before:     "+old.Fingerprint()) || !strings.Contains(e, "pinned before:     "+nw.Fingerprint()) {
		t.Fatalf("connect to a third key: exit %d, %q\n%s", code, o, e)
	}

	// The rollover is over: unpin the old key of the address.
	if o, e, code := keytoolIn(t, client, "trust-host", "--remove", srv.addr, "--fingerprint", old.Fingerprint()); code != 0 || strings.Contains(o, nw.Fingerprint()) {
		t.Fatalf("--remove ADDR --fingerprint: exit %d\n%s%s", code, o, e)
	}
	if o, e, code := connect(1); code != 0 || o != "ping\n" {
		t.Errorf("connect to the new key after the old one's removal: exit %d, %q\n%s", code, o, e)
	}
	if _, e, code := connect(0); code != 1 || !strings.Contains(e, "has changed!") {
		t.Errorf("connect to the removed key: exit %d\n%s", code, e)
	}
}

// trust-host --add --fingerprint refuses a revoked key even when it
// matches: the revocation is final.
func TestTrustHostAddRevoked(t *testing.T) {
	client := newClientHome(t)
	srv := newRolloverServer(t, client, 2)
	if _, e, code := keytoolIn(t, client, "trust-host", srv.addr, "--fingerprint", srv.keys[0].Fingerprint()); code != 0 {
		t.Fatal(e)
	}
	revoked := filepath.Join(t.TempDir(), "revoked.json")
	if err := jwk.WritePublicKeyFile(revoked, srv.keys[1], jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if _, e, code := keytoolIn(t, client, "revoke", revoked); code != 0 {
		t.Fatal(e)
	}
	srv.present.Store(1)
	_, e, code := keytoolIn(t, client, "trust-host", srv.addr, "--add", "--fingerprint", srv.keys[1].Fingerprint())
	if code != 1 || !strings.Contains(e, "revoked") {
		t.Fatalf("--add of a revoked key: exit %d\n%s", code, e)
	}
	if ents, _ := keyDirEntries(filepath.Join(client, "trusted_hosts.d")); len(ents) != 1 {
		t.Fatalf("trusted_hosts.d holds %d files, want 1", len(ents))
	}
}
