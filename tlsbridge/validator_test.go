package tlsbridge

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// TestValidatorAnswers is libvirt's certificate validator (seed 001): the
// application sees the whole peer — address, chain, the CA that verified
// it if one did, the key's other pinned addresses — and answers once,
// permanently or reject, both for a server a CA verified (ConfirmCA) and
// for one whose key is simply not pinned (Ask).
func TestValidatorAnswers(t *testing.T) {
	for _, mode := range []string{"ca-verified", "unknown"} {
		for _, answer := range []Answer{Yes, Once, No} {
			t.Run(mode+"/"+[...]string{"no", "yes", "once"}[answer], func(t *testing.T) {
				ca := newCA(t)
				cli := newHome(t, jwk.EC256)
				srv, ts := serverFor(t, cli)
				opts := ClientOptions{Policy: Ask}
				if mode == "ca-verified" {
					srv.id = ca.issue(t, srv.id.Key)
					ts = startServer(t, srv, ServerOptions{})
					pem, _ := os.ReadFile(ca.caFile())
					pki, err := ParsePKI(pem, nil) // from memory: libvirt's AddCertData
					if err != nil {
						t.Fatal(err)
					}
					opts = ClientOptions{Policy: Strict, PKI: pki, ConfirmCA: true, Purpose: "libvirt"}
				}
				cli.pin(t, "other.example:16514", srv.id.Key)
				var asked []UnknownHost
				opts.Prompt = PromptFunc(func(h UnknownHost) (Answer, error) {
					asked = append(asked, h)
					return answer, nil
				})
				c := cli.client(t, opts)
				_, err := roundTrip(ts.addr(), mustConfig(t, c, ts.addr()))
				if len(asked) != 1 {
					t.Fatalf("asked %d times, want once", len(asked))
				}
				h := asked[0]
				if h.Addr != ts.addr() || h.Key.Fingerprint() != srv.id.Key.Fingerprint() || len(h.Chain) == 0 ||
					!bytes.Equal(h.Chain[0].Raw, srv.id.Certificate.Certificate[0]) {
					t.Errorf("asked about %s, key %s, chain of %d: not the server", h.Addr, h.Key.Fingerprint(), len(h.Chain))
				}
				if strings.Join(h.OtherAddresses, ",") != "other.example:16514" {
					t.Errorf("other addresses %v, want the key's other pin", h.OtherAddresses)
				}
				if mode == "ca-verified" {
					if h.CA == nil || !bytes.Equal(h.CA.CA().Raw, ca.cert.Raw) || h.CA.File != memoryFile || h.Purpose != "libvirt" {
						t.Errorf("CA = %+v, purpose %q: want the CA given in memory", h.CA, h.Purpose)
					}
				} else if h.CA != nil {
					t.Errorf("CA = %+v for a server no CA verified", h.CA)
				}
				pinned := cli.host.DecidePurpose(ts.addr(), opts.Purpose, srv.id.Key.SPKIHash()).Verdict == knownhosts.Pinned
				var refused *RefusedHostError
				switch answer {
				case Yes: // permanently: pinned, and not asked again
					if err != nil || !pinned {
						t.Fatalf("yes: err %v, pinned %v", err, pinned)
					}
					// A pin made for a purpose is for that purpose only.
					for _, e := range cli.host.Entries() {
						if e.SPKIHash == srv.id.Key.SPKIHash() && slices.Contains(e.Addresses, ts.addr()) && strings.Join(e.Purposes, ",") != h.Purpose {
							t.Errorf("pinned for purposes %v, want %q", e.Purposes, h.Purpose)
						}
					}
				case Once: // connects, pins nothing: asked again next time
					if err != nil || pinned {
						t.Fatalf("once: err %v, pinned %v", err, pinned)
					}
				case No:
					if !errors.As(err, &refused) || pinned {
						t.Fatalf("no: err %v, pinned %v", err, pinned)
					}
				}
				_, _ = roundTrip(ts.addr(), mustConfig(t, c, ts.addr()))
				if want := map[Answer]int{Yes: 1, Once: 2, No: 2}[answer]; len(asked) != want {
					t.Errorf("asked %d times after a second connection, want %d", len(asked), want)
				}
			})
		}
	}
}

// TestValidatorTerminalNamesTheCA: the terminal question about a server a
// CA verified names the CA, not an unknown host, and the connection's
// purpose, for which yes would pin the key.
func TestValidatorTerminalNamesTheCA(t *testing.T) {
	ca := newCA(t)
	cli := newHome(t, jwk.EC256)
	srv, _ := serverFor(t, cli)
	srv.id = ca.issue(t, srv.id.Key)
	ts := startServer(t, srv, ServerOptions{})
	pki, err := LoadPKI(PKIOptions{CA: ca.caFile(), CRL: ca.crlFile(), Home: ca.dir})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := cli.client(t, ClientOptions{PKI: pki, ConfirmCA: true, Purpose: "migration", Prompt: Terminal{In: strings.NewReader("once\n"), Out: &out}})
	if _, err := roundTrip(ts.addr(), mustConfig(t, c, ts.addr())); err != nil {
		t.Fatal(err)
	}
	want := "The certificate of host '" + ts.addr() + "' was verified by the CA 'CN=Example Org CA' (" + ca.caFile() + ")."
	purpose := "Connection purpose: migration (yes pins the key for this purpose only)."
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), srv.id.Key.Fingerprint()) || !strings.Contains(out.String(), purpose) {
		t.Errorf("question:\n%s\nwant %q, the fingerprint and %q", out.String(), want, purpose)
	}
}

// TestPKIFromMemory: CA certificates and CRLs given as PEM bytes decide as
// files do — the CRL revokes, a CRL no CA signed is refused, and nothing
// but PEM is needed.
func TestPKIFromMemory(t *testing.T) {
	ca := newCA(t)
	srv := newHome(t, jwk.EC256)
	cli := newHome(t, jwk.EC256)
	srv.id = ca.issue(t, srv.id.Key)
	srv.authorize(t, "client", cli.id.Key)
	ts := startServer(t, srv, ServerOptions{})
	caPEM, _ := os.ReadFile(ca.caFile())
	crlPEM, _ := os.ReadFile(ca.crlFile())
	pki, err := ParsePKI(caPEM, crlPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{PKI: pki}), ts.addr())); err != nil {
		t.Fatalf("a server the in-memory CA issued was refused: %v", err)
	}
	ca.writeCRL(t, srv.id)
	crlPEM, _ = os.ReadFile(ca.crlFile())
	if pki, err = ParsePKI(caPEM, crlPEM); err != nil {
		t.Fatal(err)
	}
	_, err = roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{PKI: pki}), ts.addr()))
	var revoked *RevokedCertificateError
	if !errors.As(err, &revoked) || revoked.File != memoryFile {
		t.Fatalf("revoked by the in-memory CRL: err = %v", err)
	}
	other, _ := os.ReadFile(newCA(t).caFile())
	var fileErr *PKIFileError
	if _, err := ParsePKI(other, crlPEM); !errors.As(err, &fileErr) || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("a CRL the CA did not sign: err = %v", err)
	}
	if _, err := ParsePKI([]byte("not PEM"), nil); !errors.As(err, &fileErr) {
		t.Errorf("no certificate: err = %v", err)
	}
}
