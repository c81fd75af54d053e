package tlsbridge

import (
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// pinWithoutAddress copies k's public key file as it is into h's
// trusted_hosts.d/name (Docker's "copy pub_key.json to
// trusted_hosts.d/server.json").
func (h *home) pinWithoutAddress(t *testing.T, name string, k *jwk.Key) {
	t.Helper()
	dir := filepath.Join(h.dir, "trusted_hosts.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, name), k, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	h.host.Reload()
}

// A host key pinned without an address (seed 003's Usage: the server's
// pub_key.json copied to the client's trusted_hosts.d/server.json) admits
// the server only where its certificate names the host dialled: by a name
// it names, yes; by an address it does not name, or with a certificate
// naming no host, the handshake fails with *knownhosts.NameMismatchError,
// under every policy and without a prompt. An address pinned to another
// key is a changed key, which the key without an address does not rescue.
func TestHostKeyPinnedWithoutAddress(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	srv, ts := serverFor(t, cli) // its certificate names localhost only
	_, port, _ := net.SplitHostPort(ts.addr())
	cli.pinWithoutAddress(t, "server.json", srv.id.Key)
	noPrompt := PromptFunc(func(h UnknownHost) (Answer, error) {
		t.Errorf("asked about %s", h.Addr)
		return Yes, nil
	})

	// By name: the certificate names localhost (dialled at 127.0.0.1, so
	// that the test does not depend on how localhost resolves).
	named := net.JoinHostPort("localhost", port)
	if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: Strict}), named)); err != nil {
		t.Fatalf("the certificate names the host: %v", err)
	}

	// By an address the certificate does not name.
	for policy := Strict; policy <= Insecure; policy++ {
		_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: policy, Prompt: noPrompt}), ts.addr()))
		var me *knownhosts.NameMismatchError
		if !errors.As(err, &me) || me.Host != "127.0.0.1" || len(me.Names) != 1 || me.Names[0] != "localhost" {
			t.Errorf("policy %s: certificate names another host: %v, want *knownhosts.NameMismatchError", policy, err)
		}
	}
	if files := pinFiles(t, cli); len(files) != 1 {
		t.Errorf("pin files %v: a refusal pinned something", files)
	}

	// A certificate that names no host.
	bare := newHome(t, jwk.EC256)
	id, err := NewIdentity(bare.id.Key, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bare.id = id
	bare.authorize(t, "client", cli.id.Key)
	bts := startServer(t, bare, ServerOptions{})
	cli.pinWithoutAddress(t, "bare.json", bare.id.Key)
	_, bport, _ := net.SplitHostPort(bts.addr())
	_, err = roundTrip(bts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: Ask, Prompt: noPrompt}), net.JoinHostPort("localhost", bport)))
	var me *knownhosts.NameMismatchError
	if !errors.As(err, &me) || len(me.Names) != 0 {
		t.Errorf("certificate naming no host: %v, want *knownhosts.NameMismatchError", err)
	}

	// The address pinned to another key: changed, not rescued.
	old := mustGenerate(t, jwk.EC256)
	cli.pin(t, named, old)
	_, err = roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: Strict}), named))
	var changed *knownhosts.KeyChangedError
	if !errors.As(err, &changed) || len(changed.Want) != 1 || changed.Want[0].Fingerprint != old.Fingerprint() {
		t.Errorf("address pinned to another key: %v, want *knownhosts.KeyChangedError", err)
	}

	// Revoked: refused by name too.
	cli.revoke(t, srv.id.Key)
	_, err = roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: Strict}), net.JoinHostPort("localhost", "1")))
	var revoked *knownhosts.RevokedError
	if !errors.As(err, &revoked) {
		t.Errorf("revoked: %v, want *knownhosts.RevokedError", err)
	}
}

// The names a first run makes the identity with (proxy --gen --host) are
// saved in the private key, so that later runs' certificates name them
// too; the public half handed out — what a Docker client copies into
// trusted_hosts.d — leaves them out.
func TestIdentityNamesSaved(t *testing.T) {
	home := filepath.Join(t.TempDir(), "server")
	id, generated, err := LoadOrGenerateHomeIdentity(home, jwk.EC256, NamesOptions("server.example", "127.0.0.1"))
	if err != nil || !generated {
		t.Fatal(generated, err)
	}
	again, err := LoadHomeIdentity(home, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, leaf := range []*x509.Certificate{id.Certificate.Leaf, again.Certificate.Leaf} {
		if !slices.Equal(leaf.DNSNames, []string{"server.example"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
			t.Errorf("certificate names %v %v", leaf.DNSNames, leaf.IPAddresses)
		}
	}
	// Names given for one run win over the saved ones.
	other, err := LoadHomeIdentity(home, NamesOptions("other.example"))
	if err != nil || !slices.Equal(other.Certificate.Leaf.DNSNames, []string{"other.example"}) || len(other.Certificate.Leaf.IPAddresses) != 0 {
		t.Errorf("one run's names: %v", err)
	}
	pub, err := os.ReadFile(filepath.Join(home, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.ParseOne(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.Attrs[jwk.AttrNames]; ok || len(k.Attrs) > 1 {
		t.Errorf("pub_key.json carries attributes %v", k.Attrs)
	}
}

// The names a certificate holds are its maker's text — a DNS name may
// hold any ASCII byte, a line feed included — and the holder of a key
// pinned without an address makes its own: the *knownhosts.NameMismatchError
// they end up in stays one line, as every error (found by review: keytool
// connect printed a line of the server's writing).
func TestNameMismatchIsOneLine(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	srv := newHome(t, jwk.EC256)
	srv.authorize(t, "client", cli.id.Key)
	id, err := NewIdentity(srv.id.Key, CertOptions{DNSNames: []string{"db.example\nWARNING: run keytool trust-host --insecure"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.id = id
	ts := startServer(t, srv, ServerOptions{})
	cli.pinWithoutAddress(t, "server.json", srv.id.Key)
	_, err = roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: Strict}), ts.addr()))
	var me *knownhosts.NameMismatchError
	if !errors.As(err, &me) {
		t.Fatalf("got %v, want *knownhosts.NameMismatchError", err)
	}
	if msg := me.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, `db.example\n`) {
		t.Errorf("%q: want one line, the name quoted", msg)
	}
}
