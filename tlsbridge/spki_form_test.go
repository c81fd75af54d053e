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
func inAnotherForm(t *testing.T, id *Identity, pad uint8) *Identity {
	t.Helper()
	der := certInAnotherForm(t, id.Certificate.Certificate[0], pad)
	return &Identity{Key: id.Key, Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.Certificate.PrivateKey}}
}

// certInAnotherForm returns the certificate cert with its key in another
// DER form: its SubjectPublicKeyInfo's BIT STRING shifted left by pad
// bits, with pad padding bits, which crypto/x509 reads back as the same
// key (BitString.RightAlign). The SPKI keeps its length, so the
// certificate is the original with those bytes replaced; its signature
// no longer verifies, which nobody checks of a pinned key's certificate
// (an envelope) nor of a CA's own, and the holder of the key could sign
// it anew anyway.
func certInAnotherForm(t *testing.T, cert []byte, pad uint8) []byte {
	t.Helper()
	leaf, err := x509.ParseCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	in := cryptobyte.String(leaf.RawSubjectPublicKeyInfo)
	var spki, alg cryptobyte.String
	var bits []byte
	if !in.ReadASN1(&spki, asn1.SEQUENCE) || !spki.ReadASN1Element(&alg, asn1.SEQUENCE) || !spki.ReadASN1BitStringAsBytes(&bits) {
		t.Fatal("cannot read the SPKI")
	}
	if bits[0]>>(8-pad) != 0 {
		t.Fatalf("the key's first %d bits are not zero: cannot shift it", pad)
	}
	shifted := make([]byte, len(bits))
	for i := range bits {
		shifted[i] = bits[i] << pad
		if i+1 < len(bits) {
			shifted[i] |= bits[i+1] >> (8 - pad)
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(alg)
		b.AddASN1(asn1.BIT_STRING, func(b *cryptobyte.Builder) {
			b.AddUint8(pad)
			b.AddBytes(shifted)
		})
	})
	other := b.BytesOrPanic()
	if len(other) != len(leaf.RawSubjectPublicKeyInfo) || bytes.Equal(other, leaf.RawSubjectPublicKeyInfo) {
		t.Fatal("the other form is not another SPKI of the same length")
	}
	der := bytes.Replace(leaf.Raw, leaf.RawSubjectPublicKeyInfo, other, 1)
	again, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("crypto/x509 no longer reads the other form: %v", err)
	}
	// The premise: the same key to crypto/x509 and crypto/tls, another
	// SPKI hash.
	want, err := jwk.NewPublicKey(leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.NewPublicKey(again.PublicKey)
	if err != nil || k.SPKIHash() != want.SPKIHash() || sha256.Sum256(again.RawSubjectPublicKeyInfo) == want.SPKIHash() {
		t.Fatalf("the other form is not the same key under another SPKI hash (%v)", err)
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
	t.Run("host", func(t *testing.T) {
		srv := newHome(t, jwk.EC256)
		cli := newHome(t, jwk.EC256)
		srv.authorize(t, "client", cli.id.Key)
		srv.id = inAnotherForm(t, srv.id, 1)
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
	t.Run("client", func(t *testing.T) {
		srv := newHome(t, jwk.EC256)
		cli := newHome(t, jwk.EC256)
		srv.revoke(t, cli.id.Key)
		rs := startRecording(t, mustServer(t, srv, ServerOptions{AllowUnknown: true}))
		cli.pin(t, rs.addr(), srv.id.Key)
		rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "the revoked key", isA[*authkeys.RevokedError])
		cli.id = inAnotherForm(t, cli.id, 1)
		rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "the revoked key in another form", isA[*KeyFormError])
	})
}

// A CA whose key is revoked vouches for nobody (TestRevokedCAKeyVouchesForNobody),
// whatever DER form its certificate holds the key in: a ca.pem holding
// it in another form verifies the same chains (x509 checks signatures
// with the key it read), and the key is looked up in its one form.
func TestRevokedCAKeyInAnotherForm(t *testing.T) {
	ca := newCA(t)
	caKey, err := jwk.NewPublicKey(ca.cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ca.caFile(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certInAnotherForm(t, ca.cert.Raw, 1)}), 0o644)
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
