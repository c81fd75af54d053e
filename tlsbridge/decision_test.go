package tlsbridge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// decideFunc is a custom store of client keys: a function.
type decideFunc func(sum [32]byte, remote netip.Addr) authkeys.Decision

func (f decideFunc) Decide(sum [32]byte, remote netip.Addr) authkeys.Decision { return f(sum, remote) }

// A custom store's decision is the whole contract: one that answers
// Revoked — with no error of authkeys' types — gets exactly what the
// built-in store gets: refused in the handshake even under AllowUnknown,
// and no CA admits the key in its place. Expired and WrongNetwork are
// final too; Unknown lets the CA decide.
func TestCustomStoreDecisions(t *testing.T) {
	ca := newCA(t)
	srv := newHome(t, jwk.EC256)
	cli := newHome(t, jwk.EC256)
	cli.id = ca.issue(t, cli.id.Key) // a certificate the CA would accept
	for _, tc := range []struct {
		verdict  authkeys.Verdict
		admitted bool
	}{
		{authkeys.Revoked, false},
		{authkeys.Expired, false},
		{authkeys.WrongNetwork, false},
		{authkeys.Unknown, true},
		{authkeys.Authorized, true},
	} {
		t.Run(tc.verdict.String(), func(t *testing.T) {
			store := decideFunc(func([32]byte, netip.Addr) authkeys.Decision {
				d := authkeys.Decision{Verdict: tc.verdict}
				if tc.verdict != authkeys.Unknown && tc.verdict != authkeys.Revoked {
					d.Entry = &authkeys.Entry{Name: "custom"}
				}
				return d
			})
			for _, allowUnknown := range []bool{false, true} {
				ts := startServer(t, srv, ServerOptions{Clients: store, PKI: ca.pki(t), AllowUnknown: allowUnknown})
				cli.pin(t, ts.addr(), srv.id.Key)
				_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))
				finished := err == nil
				wantFinished := tc.admitted || allowUnknown && tc.verdict != authkeys.Revoked
				if finished != wantFinished {
					t.Fatalf("AllowUnknown=%v: handshake finished = %v (%v), want %v", allowUnknown, finished, err, wantFinished)
				}
				if !finished {
					continue
				}
				p := ts.lastPeer(t)
				if p.Authenticated() != tc.admitted || p.Verdict != tc.verdict {
					t.Errorf("AllowUnknown=%v: peer authenticated %v, verdict %v (%v)", allowUnknown, p.Authenticated(), p.Verdict, p.Err)
				}
				if tc.verdict == authkeys.Unknown && !p.ViaCA {
					t.Errorf("an Unknown key with a CA certificate was not admitted by the CA")
				}
				if !tc.admitted && p.reason() == ReasonNotAuthorized {
					t.Errorf("verdict %v answered with reason %s", tc.verdict, p.reason())
				}
			}
		})
	}
}

// Skipped authorized-keys files never widen trust: a key in no file that
// loaded, while one was skipped, may have been limited there ("expires",
// "from"), so the CA does not admit it in its place.
func TestSkippedAuthorizedFileKeepsTheCAOut(t *testing.T) {
	ca := newCA(t)
	srv := newHome(t, jwk.EC256)
	cli := newHome(t, jwk.EC256)
	cli.id = ca.issue(t, cli.id.Key)
	ts := startServer(t, srv, ServerOptions{PKI: ca.pki(t)})
	cli.pin(t, ts.addr(), srv.id.Key)
	if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{}), ts.addr())); err != nil {
		t.Fatalf("the CA client before any file is skipped: %v", err)
	}
	// The key's entry, with a limit, in a file others may write: skipped.
	dir := filepath.Join(srv.dir, "authorized_keys.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	limited := cli.id.Key.PublicKey()
	limited.Attrs = jwk.Attributes{}
	limited.Attrs.SetString(jwk.AttrExpires, "2001-01-01T00:00:00Z")
	file := filepath.Join(dir, "cli.json")
	if err := jwk.WritePublicKeyFile(file, limited, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	srv.auth.Reload()
	refused(t, ts, mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{cli.id.Certificate.Leaf}}
	p, err := ts.srv.Peer(&cs, netip.MustParseAddr("127.0.0.1"))
	var skipped *SkippedTrustError
	var mode *trustfile.PermissionError
	if err != nil || !errors.As(p.Err, &skipped) || p.reason() != ReasonUnavailable {
		t.Errorf("Peer: %v, %v; want *SkippedTrustError, reason unavailable", p, err)
	} else if skipped.First == nil || skipped.First.Path != file || !errors.As(p.Err, &mode) || !strings.Contains(p.Err.Error(), "(the first skipped: "+file) {
		t.Errorf("Peer's error %q does not name the file skipped, %s, and its problem", p.Err, file)
	}
	// Fixed: the entry decides (expired), not the CA.
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	srv.auth.Reload()
	refused(t, ts, mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))
	if p, _ := ts.srv.Peer(&cs, netip.MustParseAddr("127.0.0.1")); p.Verdict != authkeys.Expired {
		t.Errorf("after the fix: verdict %v, want expired", p.Verdict)
	}
}

// hostsFunc is a custom store of host keys that records pinning.
type hostsFunc struct {
	decide func(addr string, sum [32]byte) knownhosts.Decision
	added  int
}

func (h *hostsFunc) Decide(addr string, sum [32]byte) knownhosts.Decision { return h.decide(addr, sum) }
func (h *hostsFunc) Add(string, *jwk.Key) (string, error) {
	h.added++
	return "custom", nil
}

// On the client side too, the decision is the contract: a custom store's
// Changed, Revoked, Skipped or Refused is final under every policy — no
// prompt, no pin, no insecure pass — and Unknown lets the policy decide.
func TestCustomHostStoreDecisions(t *testing.T) {
	srv := newHome(t, jwk.EC256)
	ts := startServer(t, srv, ServerOptions{})
	cli := newHome(t, jwk.EC256)
	srv.authorize(t, "cli", cli.id.Key)
	for _, v := range []knownhosts.Verdict{knownhosts.Changed, knownhosts.Revoked, knownhosts.Skipped, knownhosts.Refused, knownhosts.Unknown, knownhosts.Pinned} {
		for _, policy := range []Policy{Strict, AcceptNew, Insecure} {
			hosts := &hostsFunc{decide: func(string, [32]byte) knownhosts.Decision { return knownhosts.Decision{Verdict: v} }}
			_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Hosts: hosts, Policy: policy}), ts.addr()))
			wantOK := v == knownhosts.Pinned || v == knownhosts.Unknown && policy != Strict
			if (err == nil) != wantOK {
				t.Errorf("%v under %v: err %v, want connected = %v", v, policy, err, wantOK)
			}
			if wantPin := v == knownhosts.Unknown && policy == AcceptNew; (hosts.added > 0) != wantPin {
				t.Errorf("%v under %v: pinned %d times", v, policy, hosts.added)
			}
			var changed *knownhosts.KeyChangedError
			if v == knownhosts.Changed && !errors.As(err, &changed) {
				t.Errorf("Changed under %v: %v, want *knownhosts.KeyChangedError", policy, err)
			}
		}
	}
}

// cert.pem is a trust file like any other: a certificate others may write
// is not presented.
func TestCertFileStrictModes(t *testing.T) {
	ca := newCA(t)
	h := newHome(t, jwk.EC256)
	keyFile := filepath.Join(h.dir, "key.json")
	if err := jwk.WritePrivateKeyFile(keyFile, h.id.Key, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(h.dir, "cert.pem")
	if err := os.WriteFile(certFile, ca.issue(t, h.id.Key).CertificatePEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHomeIdentity(h.dir, CertOptions{}); err != nil {
		t.Fatalf("a good cert.pem: %v", err)
	}
	if err := os.Chmod(certFile, 0o666); err != nil {
		t.Fatal(err)
	}
	var pe *trustfile.PermissionError
	if _, err := LoadHomeIdentity(h.dir, CertOptions{}); !errors.As(err, &pe) || pe.Path != certFile {
		t.Fatalf("cert.pem 0666: %v, want a *trustfile.PermissionError naming it", err)
	}
}
