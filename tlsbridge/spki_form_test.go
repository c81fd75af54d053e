package tlsbridge

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// inAnotherForm returns id with a certificate holding the same key in
// another DER form (certInAnotherForm).
func inAnotherForm(t *testing.T, id *Identity, form string) *Identity {
	t.Helper()
	der := certInAnotherForm(t, id.Certificate.Certificate[0], form)
	return &Identity{Key: id.Key, Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.Certificate.PrivateKey}}
}

// keyForms are the other DER forms of a key that crypto/x509 reads back
// as the same key (certInAnotherForm).
var keyForms = []string{"padded", "parameter", "trailing"}

// certInAnotherForm returns the certificate cert with its key in another
// DER form that crypto/x509 reads back as the same key:
//
//   - padded: the SubjectPublicKeyInfo's BIT STRING shifted left by a
//     bit, with one padding bit (x509 right-aligns it: BitString.RightAlign);
//   - parameter: an element after the algorithm's parameters (x509 reads
//     the first and ignores the rest of the AlgorithmIdentifier);
//   - trailing: an element after the BIT STRING (ignored likewise).
//
// The certificate's signature no longer verifies, which nobody checks of
// a pinned key's certificate (an envelope) nor of a CA's own; the holder
// of the key could sign it anew anyway.
func certInAnotherForm(t *testing.T, cert []byte, form string) []byte {
	t.Helper()
	leaf, err := x509.ParseCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	in := cryptobyte.String(leaf.RawSubjectPublicKeyInfo)
	var spki, alg cryptobyte.String
	var bits []byte
	if !in.ReadASN1(&spki, asn1.SEQUENCE) || !spki.ReadASN1(&alg, asn1.SEQUENCE) || !spki.ReadASN1BitStringAsBytes(&bits) {
		t.Fatal("cannot read the SPKI")
	}
	var pad uint8
	if form == "padded" {
		pad = 1
		if bits[0]>>7 != 0 {
			t.Fatal("the key's first bit is not zero: cannot shift it")
		}
		shifted := make([]byte, len(bits))
		for i := range bits {
			shifted[i] = bits[i] << 1
			if i+1 < len(bits) {
				shifted[i] |= bits[i+1] >> 7
			}
		}
		bits = shifted
	}
	null := []byte{0x05, 0x00}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(alg)
			if form == "parameter" {
				b.AddBytes(null)
			}
		})
		b.AddASN1(asn1.BIT_STRING, func(b *cryptobyte.Builder) {
			b.AddUint8(pad)
			b.AddBytes(bits)
		})
		if form == "trailing" {
			b.AddBytes(null)
		}
	})
	other := b.BytesOrPanic()
	if bytes.Equal(other, leaf.RawSubjectPublicKeyInfo) {
		t.Fatalf("%s: not another form", form)
	}
	// The certificate again, its lengths around the SPKI made anew.
	var c, tbs, rest cryptobyte.String
	whole := cryptobyte.String(leaf.Raw)
	if !whole.ReadASN1(&c, asn1.SEQUENCE) || !c.ReadASN1(&tbs, asn1.SEQUENCE) {
		t.Fatal("cannot read the certificate")
	}
	rest = c
	var cb cryptobyte.Builder
	cb.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(bytes.Replace(tbs, leaf.RawSubjectPublicKeyInfo, other, 1))
		})
		b.AddBytes(rest)
	})
	der := cb.BytesOrPanic()
	again, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("%s: crypto/x509 does not read it: %v", form, err)
	}
	// The premise: the same key to crypto/x509 and crypto/tls, another
	// SPKI hash.
	want, err := jwk.NewPublicKey(leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.NewPublicKey(again.PublicKey)
	if err != nil || k.SPKIHash() != want.SPKIHash() || sha256.Sum256(again.RawSubjectPublicKeyInfo) == want.SPKIHash() {
		t.Fatalf("%s: not the same key under another SPKI hash (%v)", form, err)
	}
	return der
}

// A revoked key presented in another DER form of its SPKI is still the
// revoked key: crypto/tls verifies the handshake with the key x509 read,
// so an SPKI hash taken from any form but the key's one would let its
// holder pass as an unknown key — a revoked host accepted under Insecure
// and a question answered once, a revoked client finishing the handshake
// under AllowUnknown, invited to enroll. The certificate is refused.
func TestRevokedKeyInAnotherFormRefused(t *testing.T) {
	for _, form := range keyForms {
		t.Run("host "+form, func(t *testing.T) {
			srv := newHome(t, jwk.EC256)
			cli := newHome(t, jwk.EC256)
			srv.authorize(t, "client", cli.id.Key)
			srv.id = inAnotherForm(t, srv.id, form)
			ts := startServer(t, srv, ServerOptions{})
			cli.revoke(t, srv.id.Key)
			for _, opts := range []ClientOptions{{Policy: Insecure}, {Policy: Ask, Prompt: PromptFunc(func(UnknownHost) (Answer, error) { return Once, nil })}, {Policy: AcceptNew}} {
				_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, opts), ts.addr()))
				var kf *KeyFormError
				if !errors.As(err, &kf) || kf.Fingerprint != srv.id.Key.Fingerprint() || kf.Peer != "host "+ts.addr() {
					t.Errorf("policy %s: err = %v, want *KeyFormError naming the host and key %s", opts.Policy, err, srv.id.Key.Fingerprint())
				}
			}
			if files := pinFiles(t, cli); len(files) != 0 {
				t.Errorf("pinned %v", files)
			}
		})
		t.Run("client "+form, func(t *testing.T) {
			srv := newHome(t, jwk.EC256)
			cli := newHome(t, jwk.EC256)
			srv.revoke(t, cli.id.Key)
			rs := startRecording(t, mustServer(t, srv, ServerOptions{AllowUnknown: true}))
			cli.pin(t, rs.addr(), srv.id.Key)
			rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "the revoked key", isA[*authkeys.RevokedError])
			cli.id = inAnotherForm(t, cli.id, form)
			rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "the revoked key in another form", isA[*KeyFormError])
		})
	}
}

// A CA whose key is revoked vouches for nobody (TestRevokedCAKeyVouchesForNobody),
// whatever DER form its certificate holds the key in: a ca.pem holding
// it in another form verifies the same chains (x509 checks signatures
// with the key it read), and the key is looked up in its one form.
func TestRevokedCAKeyInAnotherForm(t *testing.T) {
	for _, form := range keyForms {
		t.Run(form, func(t *testing.T) { revokedCAKeyInAnotherForm(t, form) })
	}
}

func revokedCAKeyInAnotherForm(t *testing.T, form string) {
	ca := newCA(t)
	caKey, err := jwk.NewPublicKey(ca.cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ca.caFile(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certInAnotherForm(t, ca.cert.Raw, form)}), 0o644)
	revokedCA := func(err error) bool {
		var rc *RevokedCAKeyError
		return errors.As(err, &rc) && strings.Contains(err.Error(), caKey.Fingerprint())
	}

	srv := newHome(t, jwk.EC256)
	rs := startRecording(t, mustServer(t, srv, ServerOptions{PKI: ca.pki(t), AllowUnknown: true}))
	cli := newHome(t, jwk.EC256)
	cli.id = ca.issue(t, cli.id.Key)
	cli.pin(t, rs.addr(), srv.id.Key)
	rs.admitted(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "control: a client of the CA in another form")
	srv.revoke(t, caKey)
	rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "a client of the revoked CA key in another form", revokedCA)

	cli, srv = newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.id = ca.issue(t, srv.id.Key)
	srv.authorize(t, "client", cli.id.Key)
	ts := startServer(t, srv, ServerOptions{})
	opts := ClientOptions{PKI: ca.pki(t)}
	if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, opts), ts.addr())); err != nil {
		t.Fatalf("control: a server of the CA in another form: %v", err)
	}
	cli.revoke(t, caKey)
	if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, opts), ts.addr())); !revokedCA(err) {
		t.Fatalf("a server of the revoked CA key in another form: err = %v, want *RevokedCAKeyError for %s", err, caKey.Fingerprint())
	}
}
