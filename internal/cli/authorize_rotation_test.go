package cli

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// TestAuthorizeIgnoresFilesAcceptRotation (found by review): a client
// hands the admin its "public key file" with "accept_rotation": true in
// it, and the admin runs a plain `keytool authorize --name bob bob.json` —
// no --accept-rotation. The entry written accepted rotation all the same
// (authorize kept the file's attributes, and said nothing about it): the
// client then announced any key it liked (no proof of possession is asked
// of the next key) and had it authorized under "bob", and revoking bob's
// own key afterwards left that key admitted. Now the file's
// accept_rotation is not kept, and authorize warns, naming the file and
// the command that grants it (docs/design.md, "What a client's file
// gives").
func TestAuthorizeIgnoresFilesAcceptRotation(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	if err := os.MkdirAll(filepath.Join(home, "authorized_keys.d"), 0o700); err != nil {
		t.Fatal(err)
	}

	// The client's key, and the file it gives the admin.
	bob, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	pub := bob.PublicKey()
	pub.Attrs = jwk.Attributes{jwk.AttrAcceptRotation: json.RawMessage("true")}
	bobFile := filepath.Join(root, "bob.json")
	if err := jwk.WritePublicKeyFile(bobFile, pub, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runKeytool(t, "", "-H", home, "authorize", "--name", "bob", bobFile)
	if code != 0 {
		t.Fatalf("authorize: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("authorize said:\n%s%s", stdout, stderr)
	// The admin is told, with the command that grants it if they meant it.
	for _, want := range []string{
		"keytool authorize: warning: " + bobFile + ` sets "accept_rotation", which is not kept`,
		"if you mean \"bob\" to rotate its key: keytool -H " + home + " authorize --accept-rotation bob\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("authorize's stderr lacks %q", want)
		}
	}

	store := authkeys.Load(authkeys.HomeOptions(home))
	defer store.Close()
	if d := store.Decide(bob.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != authkeys.Authorized {
		t.Fatalf("bob: %v", d.Verdict)
	} else if d.Entry.AcceptRotation {
		t.Errorf("plain `authorize --name bob FILE` wrote an entry that accepts rotation: the client's file opted it in (%s)", d.Entry.File)
	}

	// The server, deciding with that store.
	srvKey, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	srvID, err := tlsbridge.NewIdentity(srvKey, tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsbridge.NewServer(srvID, tlsbridge.ServerOptions{Clients: store})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- err
			return
		}
		cs := tc.ConnectionState()
		ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		_, err = srv.Peer(&cs, ap.Addr().Unmap()) // what the proxy and the HTTP middleware do
		done <- err
	}()

	// bob announces a key of its choosing, one it also holds, kept for
	// later (the next key signs its announcement: only a key bob holds
	// can be announced, docs/design.md "Announced rotation").
	spare, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tlsbridge.NewIdentity(bob, tlsbridge.CertOptions{Next: []*jwk.Key{spare}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		InsecureSkipVerify: true, // the server's key is no matter here
		Certificates:       []tls.Certificate{id.Certificate},
		MinVersion:         tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Handshake()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	conn.Close()

	// The admin revokes bob's key, never having opted bob into rotation.
	if err := jwk.WritePublicKeyFile(filepath.Join(root, "bob-revoke.json"), bob.PublicKey(), jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := runKeytool(t, "", "-H", home, "revoke", filepath.Join(root, "bob-revoke.json")); code != 0 {
		t.Fatalf("revoke: exit %d\n%s%s", code, stdout, stderr)
	}
	after := authkeys.Load(authkeys.HomeOptions(home))
	defer after.Close()
	if d := after.Decide(bob.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != authkeys.Revoked {
		t.Fatalf("bob's key after revoke: %v", d.Verdict)
	}
	if d := after.Decide(spare.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict == authkeys.Authorized {
		t.Errorf("a key bob announced is authorized as %q (%s), and still admitted after bob's key was revoked — "+
			"though the admin never ran authorize --accept-rotation", d.Entry.Name, d.Entry.File)
	}
}

// TestAuthorizeStoreIgnoresFilesAcceptRotation: the same with --store, the
// path the etcd build's authorize takes (inStore runs the command on a
// copy of the store's entries): the entry written to the store does not
// accept rotation, and the admin is told.
func TestAuthorizeStoreIgnoresFilesAcceptRotation(t *testing.T) {
	dir := t.TempDir()
	pub := bobAcceptingRotation(t)
	bobFile := filepath.Join(dir, "bob.json")
	if err := jwk.WritePublicKeyFile(bobFile, pub, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	st := newMemStore()
	u := memStoreURL(t, st)
	stdout, stderr, code := runKeytool(t, "", "-H", filepath.Join(dir, "home"), "authorize", "--store", u, "--name", "bob", bobFile)
	if code != 0 {
		t.Fatalf("authorize --store: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, `sets "accept_rotation", which is not kept`) || !strings.Contains(stderr, "--store "+u+" authorize --accept-rotation bob") {
		t.Errorf("authorize --store did not warn with the command that grants rotation on the store:\n%s", stderr)
	}
	if _, ok := bobInStore(t, st).Attrs[jwk.AttrAcceptRotation]; ok {
		t.Errorf("the entry written to the store keeps the client's accept_rotation:\n%s", st.now()[0].Value)
	}
}

// bobAcceptingRotation is the public half of a new key whose file says
// "accept_rotation": true, with the comment bob@laptop.
func bobAcceptingRotation(t *testing.T) *jwk.Key {
	t.Helper()
	bob, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	pub := bob.PublicKey()
	pub.Attrs = jwk.Attributes{jwk.AttrAcceptRotation: json.RawMessage("true"), jwk.AttrComment: json.RawMessage(`"bob@laptop"`)}
	return pub
}

// bobInStore is the one key st holds, bob's, whose comment must be the
// client's still.
func bobInStore(t *testing.T, st *memStore) *jwk.Key {
	t.Helper()
	entries := st.now()
	if len(entries) != 1 {
		t.Fatalf("the store holds %+v, want bob's entry", entries)
	}
	keys, err := jwk.Parse(entries[0].Value)
	if err != nil || len(keys) != 1 {
		t.Fatalf("the store's entry %s: %v", entries[0].Value, err)
	}
	if got := keys[0].Attrs.Comment(); got != "bob@laptop" {
		t.Errorf("the entry's comment is %q, want the client's, kept", got)
	}
	return keys[0]
}

// TestAuthorizeStoreAcceptRotationOnAndOff: --accept-rotation and
// --no-accept-rotation with --store (the path the etcd build's authorize
// takes: inStore runs the command on a copy of the store's entries) change
// the store's entry, and only when there is something to change: a second
// --no-accept-rotation writes no revision and says nothing changed. The
// entry starts as an earlier version wrote it from a client's file that
// set "accept_rotation": true, which --no-accept-rotation is the way out
// of. A name with no entry is refused alike by both, naming the store in
// the advice.
func TestAuthorizeStoreAcceptRotationOnAndOff(t *testing.T) {
	legacy, err := bobAcceptingRotation(t).MarshalPublic(jwk.JWK)
	if err != nil {
		t.Fatal(err)
	}
	st := newMemStore(StoreEntry{Kind: StoreAuthorized, Name: "bob.json", Value: legacy})
	u := memStoreURL(t, st)
	home := filepath.Join(t.TempDir(), "home")
	accepts := func() bool {
		t.Helper()
		return string(bobInStore(t, st).Attrs[jwk.AttrAcceptRotation]) == "true"
	}
	authorize := func(wantCode int, args ...string) string {
		t.Helper()
		stdout, stderr, code := runKeytool(t, "", append([]string{"-H", home, "authorize", "--store", u}, args...)...)
		if code != wantCode {
			t.Fatalf("authorize --store %v: exit %d, want %d\n%s%s", args, code, wantCode, stdout, stderr)
		}
		return stdout + stderr
	}

	out := authorize(0, "--no-accept-rotation", "bob")
	if !strings.Contains(out, "no longer accepts rotation: the next key it announces will not be authorized") {
		t.Errorf("--no-accept-rotation bob said:\n%s", out)
	}
	if accepts() {
		t.Fatal("after --no-accept-rotation the store's entry still accepts rotation")
	}
	rev := st.revision
	out = authorize(0, "--no-accept-rotation", "bob")
	if !strings.Contains(out, "does not accept rotation: nothing changed") {
		t.Errorf("--no-accept-rotation bob again said:\n%s", out)
	}
	if st.revision != rev {
		t.Errorf("--no-accept-rotation of an entry that does not accept rotation wrote revision %d (was %d)", st.revision, rev)
	}

	out = authorize(0, "--accept-rotation", "bob")
	if !strings.Contains(out, "accepts rotation: the next key it announces will be authorized") || !accepts() {
		t.Errorf("--accept-rotation bob: the store's entry accepts rotation %t, said:\n%s", accepts(), out)
	}
	authorize(0, "--no-accept-rotation", "bob")
	if accepts() {
		t.Error("the second --no-accept-rotation left the store's entry accepting rotation")
	}

	for _, flag := range []string{"--accept-rotation", "--no-accept-rotation"} {
		out := authorize(1, flag, "nobody")
		if want := `no authorized key is named "nobody" (see: keytool -H ` + home + " --store " + u + " authorize --list)"; !strings.Contains(out, want) {
			t.Errorf("%s nobody said:\n%s\nwant %s", flag, out, want)
		}
	}
}
