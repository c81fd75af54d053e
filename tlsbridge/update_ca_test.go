package tlsbridge

import (
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// A host admitted through a CA, not a pin, teaches nothing: the next key
// its certificate announces is not pinned, even under UpdateHostKeys yes
// and even when the announcement is sound — here the host's own
// self-signed identity certificate, installed as the CA (a trust anchor
// that is its own leaf), so the only thing that keeps the key out is that
// no pin admitted the host (docs/design.md, "Announced rotation"). The
// control: a client that pinned the same host learns the key from the same
// certificate. A CA-issued certificate carrying the extension teaches
// nothing either.
func TestUpdateHostKeysNotThroughCA(t *testing.T) {
	next := mustGenerate(t, jwk.EC256)
	srv := newHome(t, jwk.EC256)
	id, err := NewIdentity(srv.id.Key, CertOptions{IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, Next: []*jwk.Key{next}})
	if err != nil {
		t.Fatal(err)
	}
	if len(id.Announced()) != 1 {
		t.Fatalf("the identity announces %d keys, want 1", len(id.Announced()))
	}
	srv.id = id
	ts := startServer(t, srv, ServerOptions{})

	// The host's own certificate is the CA.
	caDir := t.TempDir()
	caFile := filepath.Join(caDir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.Certificate.Leaf.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	pki, err := LoadPKI(PKIOptions{CA: caFile, Home: caDir})
	if err != nil {
		t.Fatal(err)
	}

	learned := func(cl *home) knownhosts.Verdict {
		t.Helper()
		cl.host.Reload()
		return cl.host.Decide(ts.addr(), next.SPKIHash()).Verdict
	}
	var log testlog.Buffer
	viaCA := newHome(t, jwk.EC256)
	srv.authorize(t, "viaca", viaCA.id.Key)
	if err := learnTrip(t, viaCA.client(t, ClientOptions{PKI: pki, UpdateHostKeys: UpdateYes, Logger: log.Logger()}), ts.addr()); err != nil {
		t.Fatalf("the host its CA admits was refused: %v", err)
	}
	if v := learned(viaCA); v != knownhosts.Unknown {
		t.Errorf("a host admitted through a CA had its announced key learned: %v", v)
	}
	if files := pinFiles(t, viaCA); len(files) != 0 {
		t.Errorf("pins written for a host admitted through a CA: %v", files)
	}
	if log.String() != "" {
		t.Errorf("log:\n%s", log.String())
	}

	// The control: pinned, the same certificate teaches the key.
	pinned := newHome(t, jwk.EC256)
	srv.authorize(t, "pinned", pinned.id.Key)
	pinned.pin(t, ts.addr(), srv.id.Key)
	if err := learnTrip(t, pinned.client(t, ClientOptions{PKI: pki, UpdateHostKeys: UpdateYes, Logger: new(testlog.Buffer).Logger()}), ts.addr()); err != nil {
		t.Fatal(err)
	}
	if v := learned(pinned); v != knownhosts.Pinned {
		t.Fatalf("the control: a pinned host's announced key is %v, want pinned", v)
	}

	// A certificate a CA issued with the extension in it.
	ca := newCA(t)
	issued := newHome(t, jwk.EC256)
	ext, err := nextKeysExtension(issued.id.Key, []*jwk.Key{next})
	if err != nil {
		t.Fatal(err)
	}
	issued.id = ca.issue(t, issued.id.Key, ext)
	its := startServer(t, issued, ServerOptions{})
	cl := newHome(t, jwk.EC256)
	issued.authorize(t, "cl", cl.id.Key)
	if err := learnTrip(t, cl.client(t, ClientOptions{PKI: ca.pki(t), UpdateHostKeys: UpdateYes, Logger: new(testlog.Buffer).Logger()}), its.addr()); err != nil {
		t.Fatalf("the host its CA admits was refused: %v", err)
	}
	cl.host.Reload()
	if v := cl.host.Decide(its.addr(), next.SPKIHash()).Verdict; v != knownhosts.Unknown {
		t.Errorf("a CA-issued certificate's announced key was learned: %v", v)
	}
}
