package tlsbridge

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// purposeCAs are an organisation's CAs: a general one, one for "ldap" and
// one for "pool" (seed 004's purposes).
type purposeCAs map[string]*testCA

func newPurposeCAs(t *testing.T) purposeCAs {
	return purposeCAs{"general": newCA(t), "ldap": newCA(t), "pool": newCA(t)}
}

// install installs the CAs of the tiers named (general, ldap, pool) in
// dir/ca.d with their CRLs, by the API, and returns the PKI of dir.
func (cas purposeCAs) install(t *testing.T, dir string, tiers ...string) *PKI {
	t.Helper()
	for _, tier := range tiers {
		ca := cas[tier]
		pemCA, _ := os.ReadFile(ca.caFile())
		crl, _ := os.ReadFile(ca.crlFile())
		purpose := tier
		if tier == "general" {
			purpose = ""
		}
		if _, err := InstallCA(filepath.Join(dir, "ca.d"), CAInstall{CA: pemCA, CRL: crl, Purpose: purpose, Name: tier + "-ca"}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := LoadPKI(PKIOptions{Dir: filepath.Join(dir, "ca.d"), Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A purpose row: the connection's purpose, the CAs installed, which CA
// issued the peer's certificate, what the stores say of its key, whether
// its CA's CRL revokes it — and the decision (docs/design.md, "Purposes").
type purposeRow struct {
	name       string
	purpose    string
	tiers      []string
	issuer     string // general, ldap, pool
	key        string // "": unknown; client side: pinned, other-pinned; server side: authorized; both: revoked
	pinFor     string // client side: the pin's "purpose" member (none: every purpose)
	crlRevokes bool
	via        string // admitted by this tier's CA ("" with a pin or an authorized key)
	err        any    // the refusal's type (a pointer to it), nil when admitted
}

var purposeRows = []purposeRow{
	{name: "pinned key decides before any CA", purpose: "ldap", tiers: []string{"ldap", "general"}, issuer: "pool", key: "pinned"},
	{name: "a pin that does not match refuses: no CA rescues it", purpose: "ldap", tiers: []string{"ldap"}, issuer: "ldap", key: "other-pinned", err: new(*knownhosts.KeyChangedError)},
	{name: "a pin for the purpose decides", purpose: "ldap", tiers: []string{"ldap"}, issuer: "pool", key: "pinned", pinFor: "ldap"},
	{name: "a pin of another key for the purpose refuses", purpose: "ldap", tiers: []string{"ldap"}, issuer: "ldap", key: "other-pinned", pinFor: "ldap", err: new(*knownhosts.KeyChangedError)},
	{name: "a pin for another purpose is not there: the purpose's CA admits", purpose: "ldap", tiers: []string{"ldap"}, issuer: "ldap", key: "other-pinned", pinFor: "pool", via: "ldap"},
	{name: "a pin for another purpose does not admit", purpose: "ldap", tiers: []string{"general"}, issuer: "pool", key: "pinned", pinFor: "pool", err: new(*CARefusedError)},
	{name: "revoked key refused whatever the CA", purpose: "ldap", tiers: []string{"ldap"}, issuer: "ldap", key: "revoked", err: new(*knownhosts.RevokedError)},
	{name: "CA for the purpose admits", purpose: "ldap", tiers: []string{"ldap", "general"}, issuer: "ldap", via: "ldap"},
	{name: "CAs for the purpose decide alone: the general CA does not", purpose: "ldap", tiers: []string{"ldap", "general"}, issuer: "general", err: new(*CARefusedError)},
	{name: "no CA for the purpose: the general CA admits", purpose: "ldap", tiers: []string{"pool", "general"}, issuer: "general", via: ""},
	{name: "a CA for another purpose never admits", purpose: "ldap", tiers: []string{"pool", "general"}, issuer: "pool", err: new(*CARefusedError)},
	{name: "a CA for another purpose never admits, even alone", purpose: "ldap", tiers: []string{"pool"}, issuer: "pool", err: new(*knownhosts.UnknownHostError)},
	{name: "no purpose: only the general CAs", purpose: "", tiers: []string{"ldap", "general"}, issuer: "ldap", err: new(*CARefusedError)},
	{name: "no purpose: the general CA admits", purpose: "", tiers: []string{"ldap", "general"}, issuer: "general", via: ""},
	{name: "the purpose's CRL revokes", purpose: "ldap", tiers: []string{"ldap", "general"}, issuer: "ldap", crlRevokes: true, err: new(*RevokedCertificateError)},
}

// TestPurposeOrderClient is the client side of the decision order for a
// connection of purpose P: pinned key for the address, then the CAs for
// P, then the general CAs; a pin that does not match and the chosen
// tier's refusal are final, and a CA for another purpose never admits.
func TestPurposeOrderClient(t *testing.T) {
	for _, row := range purposeRows {
		t.Run(row.name, func(t *testing.T) {
			cas := newPurposeCAs(t)
			srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
			srv.id = cas[row.issuer].issue(t, srv.id.Key)
			if row.crlRevokes {
				cas[row.issuer].writeCRL(t, srv.id)
			}
			srv.authorize(t, "client", cli.id.Key)
			ts := startServer(t, srv, ServerOptions{})
			pki := cas.install(t, cli.dir, row.tiers...)
			switch row.key {
			case "pinned":
				pinFor(t, cli, ts.addr(), srv.id.Key, row.pinFor)
			case "other-pinned":
				pinFor(t, cli, ts.addr(), mustGenerate(t, jwk.EC256), row.pinFor)
			case "revoked":
				cli.revoke(t, srv.id.Key)
			}
			c := cli.client(t, ClientOptions{PKI: pki, Purpose: row.purpose})
			_, err := roundTrip(ts.addr(), mustConfig(t, c, ts.addr()))
			checkRefusal(t, err, row.err)
		})
	}
}

// TestPurposeOrderServer is the same order for client certificates: the
// authorized keys, then the CAs for the server's purpose, then the
// general CAs.
func TestPurposeOrderServer(t *testing.T) {
	for _, row := range purposeRows {
		if row.pinFor != "" {
			continue // authorized keys have no purpose
		}
		switch row.key {
		case "pinned":
			row.key = "authorized"
		case "other-pinned":
			continue // a client key has no address to be pinned for
		}
		switch row.err.(type) {
		case **knownhosts.RevokedError:
			row.err = new(*authkeys.RevokedError)
		case **knownhosts.UnknownHostError:
			row.err = new(*authkeys.NotAuthorizedError)
		}
		t.Run(row.name, func(t *testing.T) {
			cas := newPurposeCAs(t)
			srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
			cli.id = cas[row.issuer].issue(t, cli.id.Key)
			if row.crlRevokes {
				cas[row.issuer].writeCRL(t, cli.id)
			}
			switch row.key {
			case "authorized":
				srv.authorize(t, "client", cli.id.Key)
			case "revoked":
				srv.revoke(t, cli.id.Key)
			}
			pki := cas.install(t, srv.dir, row.tiers...)
			ts := startServer(t, srv, ServerOptions{PKI: pki, Purpose: row.purpose})
			cli.pin(t, ts.addr(), srv.id.Key)
			_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))
			if row.err == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				p := ts.lastPeer(t)
				switch {
				case row.key == "authorized" && (p.Entry == nil || p.ViaCA):
					t.Errorf("admitted with entry %v, via CA %v: want by its authorized key", p.Entry, p.ViaCA)
				case row.key == "" && (!p.ViaCA || p.CA.Purpose != purposeOf(row.via)):
					t.Errorf("admitted via CA %v (%+v), want the %q CAs", p.ViaCA, p.CA, row.via)
				}
				return
			}
			if err == nil {
				t.Fatal("admitted")
			}
			// The server's reason, from the same decision on the chain.
			p, perr := ts.srv.Peer(&tls.ConnectionState{PeerCertificates: certChain(cli.id)}, addrFromString("127.0.0.1"))
			if perr != nil {
				t.Fatal(perr)
			}
			checkRefusal(t, p.Err, row.err)
		})
	}
}

// pinFor pins k for addr in h's trusted hosts, for purpose ("": every
// purpose) — a file written as an admin or configuration management would.
func pinFor(t *testing.T, h *home, addr string, k *jwk.Key, purpose string) {
	t.Helper()
	if purpose == "" {
		h.pin(t, addr, k)
		return
	}
	pk := k.PublicKey()
	pk.Attrs = jwk.Attributes{}
	pk.Attrs.SetList(jwk.AttrAddress, []string{addr})
	pk.Attrs.SetList(jwk.AttrPurpose, []string{purpose})
	dir := filepath.Join(h.dir, "trusted_hosts.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, purpose+".json"), pk, jwk.JWK, jwk.Overwrite); err != nil {
		t.Fatal(err)
	}
	h.host.Reload()
}

func purposeOf(tier string) string {
	if tier == "general" {
		return ""
	}
	return tier
}

// checkRefusal checks that err is nil when want is, else of want's type
// (a pointer to a pointer to the error type).
func checkRefusal(t *testing.T, err error, want any) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("admitted; want a %T", want)
	}
	if !errors.As(err, want) {
		t.Fatalf("err = %v (%T), want a %T", err, err, want)
	}
}

// certChain is the parsed certificate chain an identity presents.
func certChain(id *Identity) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range id.Certificate.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			panic(err)
		}
		out = append(out, c)
	}
	return out
}

// TestPurposeLiveClient: a connection a purpose's CA admitted is decided
// again by that purpose's CAs — it stays open across the re-decisions
// (the general CAs, which would refuse it, are not asked), and closes once
// its CA is uninstalled and the general CA decides.
func TestPurposeLiveClient(t *testing.T) {
	cas := newPurposeCAs(t)
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.id = cas["ldap"].issue(t, srv.id.Key)
	srv.authorize(t, "client", cli.id.Key)
	ts := startServer(t, srv, ServerOptions{})
	ts.holdOpen.Store(true)
	pki := cas.install(t, cli.dir, "ldap", "general")
	live := cli.client(t, ClientOptions{PKI: pki, Purpose: "ldap"}).Live(LiveOptions{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { live.Close() })
	conn, err := live.DialContext(context.Background(), "tcp", ts.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || line != "ok\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	// PKI mode re-decides every second: two and a half of them.
	_ = conn.SetReadDeadline(time.Now().Add(2500 * time.Millisecond))
	if _, err := r.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection the ldap CA admitted was closed: %v", err)
	}
	if _, err := UninstallCA(filepath.Join(cli.dir, "ca.d"), cli.dir, "ldap/ldap-ca"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("still open after its CA was uninstalled: %v", err)
	}
}

// TestPurposeNameRefused: a client's or server's Purpose follows the rule
// of a CA's purpose directory and a pin's "purpose" member (ValidCAName):
// one that none of them could name would silently choose no CA and no pin
// of its own, so NewClient and NewServer refuse it.
func TestPurposeNameRefused(t *testing.T) {
	h := newHome(t, jwk.EC256)
	for _, bad := range []string{"ldap pool", "ldap,pool", "../ldap", "-x", "x.crl"} {
		if _, err := NewClient(h.id, ClientOptions{Hosts: h.host, Purpose: bad}); err == nil || !strings.Contains(err.Error(), "cannot be a purpose") {
			t.Errorf("NewClient with Purpose %q: %v", bad, err)
		}
		if _, err := NewServer(h.id, ServerOptions{Clients: h.auth, Purpose: bad}); err == nil || !strings.Contains(err.Error(), "cannot be a purpose") {
			t.Errorf("NewServer with Purpose %q: %v", bad, err)
		}
	}
	if _, err := NewClient(h.id, ClientOptions{Hosts: h.host, Purpose: "pool.v2_x-1"}); err != nil {
		t.Error(err)
	}
}

// TestPurposeFirstUseTrustsNoOtherKind is the case a review of the client
// found: the host's real key is pinned for ldap only; a client of
// purpose pool meets a man in the middle at the address (here: a server
// of another key), and accept-new pins its key for pool — first use of
// that purpose, by design. A client without a purpose must not then
// admit that key: it saw every pin, and was admitted by any. Now it is
// refused (*knownhosts.PurposesOnlyError), under accept-new as well,
// pinning nothing; a client of purpose ldap meets a changed key.
func TestPurposeFirstUseTrustsNoOtherKind(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	mitm, ts := serverFor(t, cli)
	real := mustGenerate(t, jwk.EC256)
	pinFor(t, cli, ts.addr(), real, "ldap")

	if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Purpose: "pool", Policy: AcceptNew}), ts.addr())); err != nil {
		t.Fatalf("the pool client's first use: %v", err)
	}
	cli.host.Reload()
	if d := cli.host.DecidePurpose(ts.addr(), "pool", mitm.id.Key.SPKIHash()); d.Verdict != knownhosts.Pinned {
		t.Fatalf("accept-new for pool pinned nothing: %v", d.Verdict)
	}
	for _, policy := range []Policy{AcceptNew, Strict} {
		_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: policy}), ts.addr()))
		var only *knownhosts.PurposesOnlyError
		if !errors.As(err, &only) || !slices.Equal(only.Purposes, []string{"pool"}) {
			t.Errorf("a client without a purpose (%v) met the key pinned for pool only: %v, want *knownhosts.PurposesOnlyError", policy, err)
		}
	}
	cli.host.Reload()
	if d := cli.host.Decide(ts.addr(), mitm.id.Key.SPKIHash()); d.Verdict == knownhosts.Pinned {
		t.Errorf("a refused client without a purpose pinned the key for every purpose")
	}
	_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Purpose: "ldap", Policy: AcceptNew}), ts.addr()))
	var changed *knownhosts.KeyChangedError
	if !errors.As(err, &changed) {
		t.Errorf("a client of purpose ldap: %v, want a changed key", err)
	}
}
