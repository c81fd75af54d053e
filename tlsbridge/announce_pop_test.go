package tlsbridge

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// oidUnsignedNextKeys is the first form of the announcement (arc 1):
// a SEQUENCE OF SubjectPublicKeyInfo that only the current key signs.
var oidUnsignedNextKeys = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 7001, 1}

// announcerOf is an identity of k whose certificate, signed by k, carries
// exts: what a peer that holds k can make with code of its own.
func announcerOf(t testing.TB, k *jwk.Key, exts ...pkix.Extension) *Identity {
	t.Helper()
	tmpl, err := certTemplate(subjectFor(k))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.DNSNames = []string{"localhost"}
	tmpl.URIs = []*url.URL{KeyURI(k)}
	tmpl.ExtraExtensions = exts
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: issuerFor(k)}, k.Public(), k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{Key: k, Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k.Signer(), Leaf: leaf}}
}

// unsignedAnnouncement is the extension of the first form announcing
// keys — public keys only, their private halves held by someone else.
func unsignedAnnouncement(t testing.TB, keys ...*jwk.Key) pkix.Extension {
	t.Helper()
	spkis := make([]asn1.RawValue, len(keys))
	for i, k := range keys {
		spkis[i] = asn1.RawValue{FullBytes: k.SPKI()}
	}
	val, err := asn1.Marshal(spkis)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidUnsignedNextKeys, Value: val}
}

// The hole, server side: a client whose entry accepts rotation announces
// a key whose private half it does not hold — another user's, an
// admin's, read from a pub_key file — in a certificate it signs itself.
// The key must not be authorized under the announcer's name: it would
// become that user's key under alice's attributes, and a later
// `keytool authorize` of it would find it taken.
func TestAcceptRotationNeedsTheNextKeysSignature(t *testing.T) {
	srv, cl, ts, log := acceptingRotation(t)
	cl.pin(t, ts.addr(), srv.id.Key)
	victim := mustGenerate(t, jwk.EC256).PublicKey() // bob's: alice has only its public half
	cl.id = announcerOf(t, cl.id.Key, unsignedAnnouncement(t, victim))
	if _, err := roundTrip(ts.addr(), mustConfig(t, cl.client(t, ClientOptions{}), ts.addr())); err != nil {
		t.Fatal(err)
	}
	if p := ts.lastPeer(t); p.Name() != "alice" {
		t.Fatalf("the announcer admitted as %q, want alice", p.Name())
	}
	srv.auth.Reload()
	if d := srv.auth.Decide(victim.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != authkeys.Unknown {
		t.Fatalf("a key announced without its holder's signature is %v under %q (%s)\n%s", d.Verdict, d.Entry.Name, d.Entry.File, log.String())
	}
}

// The hole, client side: a pinned host announces a key whose private
// half it does not hold (another host's) in a certificate it signs
// itself; the client must not pin it for the host's address.
func TestUpdateHostKeysNeedsTheNextKeysSignature(t *testing.T) {
	srv := newHome(t, jwk.EC256)
	victim := mustGenerate(t, jwk.EC256).PublicKey()
	srv.id = announcerOf(t, srv.id.Key, unsignedAnnouncement(t, victim))
	ts := startServer(t, srv, ServerOptions{})
	cl := newHome(t, jwk.EC256)
	srv.authorize(t, "laptop", cl.id.Key)
	cl.pin(t, ts.addr(), srv.id.Key)
	var log testlog.Buffer
	if err := learnTrip(t, cl.client(t, ClientOptions{UpdateHostKeys: UpdateYes, Logger: log.Logger()}), ts.addr()); err != nil {
		t.Fatal(err)
	}
	cl.host.Reload()
	if v := cl.host.Decide(ts.addr(), victim.SPKIHash()).Verdict; v == knownhosts.Pinned {
		t.Fatalf("a key announced without its holder's signature is pinned\n%s", log.String())
	}
}

// signedAnnouncement is an extension of the signed form holding items as
// they are, whoever signed them.
func signedAnnouncement(t testing.TB, items ...signedNextKey) pkix.Extension {
	t.Helper()
	val, err := asn1.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: OIDSignedNextKeys, Value: val}
}

// signedBy is next's announcement by the key whose SPKI hash is current,
// signed by signer.
func signedBy(t testing.TB, current [32]byte, next, signer *jwk.Key) signedNextKey {
	t.Helper()
	opts, err := nextKeyScheme(signer)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Signer().Sign(rand.Reader, digest(opts, NextKeyMessage(current, next.SPKIHash())), opts)
	if err != nil {
		t.Fatal(err)
	}
	return signedNextKey{Key: asn1.RawValue{FullBytes: next.SPKI()}, Signature: sig}
}

// What AnnouncedKeys refuses, each in a certificate its own key signed
// (so that only the next key's signature, or its kind, is wrong), with
// an *AnnouncementError and no key: one bad key refuses the lot.
func TestAnnouncedKeysNeedTheNextKeysProof(t *testing.T) {
	cur := mustGenerate(t, jwk.EC384)
	other := mustGenerate(t, jwk.EC384)
	next := mustGenerate(t, jwk.EC384)
	good := signedBy(t, cur.SPKIHash(), next, next)
	victim := mustGenerate(t, jwk.Ed25519)
	for name, ext := range map[string]pkix.Extension{
		// The next key's own signature, bound to another current key:
		// taken from another certificate, or asked of the next key's
		// holder for another key.
		"transplanted": signedAnnouncement(t, signedBy(t, other.SPKIHash(), next, next)),
		// The announcer signs for a key it does not hold.
		"signed by the current key": signedAnnouncement(t, signedBy(t, cur.SPKIHash(), victim, cur)),
		"no signature":              signedAnnouncement(t, signedNextKey{Key: good.Key}),
		"another key's signature":   signedAnnouncement(t, signedNextKey{Key: asn1.RawValue{FullBytes: victim.SPKI()}, Signature: good.Signature}),
		"one bad of two":            signedAnnouncement(t, good, signedBy(t, other.SPKIHash(), victim, victim)),
		"a flipped bit": signedAnnouncement(t, func() signedNextKey {
			it := signedBy(t, cur.SPKIHash(), next, next)
			it.Signature = append([]byte{}, it.Signature...)
			it.Signature[len(it.Signature)/2] ^= 1
			return it
		}()),
		// Properly signed, but weaker than the current key.
		"weaker curve": signedAnnouncement(t, func() signedNextKey {
			weak := mustGenerate(t, jwk.EC256)
			return signedBy(t, cur.SPKIHash(), weak, weak)
		}()),
		"weaker kind": signedAnnouncement(t, func() signedNextKey {
			weak := mustGenerate(t, jwk.RSA3072) // 128 bits, P-384's 192
			return signedBy(t, cur.SPKIHash(), weak, weak)
		}()),
	} {
		leaf := announcerOf(t, cur, ext).Certificate.Leaf
		var ae *AnnouncementError
		if got, err := AnnouncedKeys(leaf); !errors.As(err, &ae) || got != nil {
			t.Errorf("%s: announced %v, %v", name, got, err)
		}
	}
	leaf := announcerOf(t, cur, signedAnnouncement(t, good)).Certificate.Leaf
	if got, err := AnnouncedKeys(leaf); err != nil || len(got) != 1 || !got[0].Equal(next) {
		t.Fatalf("the control, a sound announcement: %v, %v", got, err)
	}
	var weaker *WeakerKeyError
	leaf = announcerOf(t, cur, signedAnnouncement(t, func() signedNextKey {
		weak := mustGenerate(t, jwk.EC256)
		return signedBy(t, cur.SPKIHash(), weak, weak)
	}())).Certificate.Leaf
	if _, err := AnnouncedKeys(leaf); !errors.As(err, &weaker) {
		t.Errorf("a weaker next key: %v, want a *WeakerKeyError", err)
	}
}

// The order of kinds a rotation may not go down (CheckNextKey): a lower
// security level, or a smaller modulus or curve of the same family.
func TestCheckNextKey(t *testing.T) {
	keys := map[jwk.Type]*jwk.Key{}
	for _, typ := range []jwk.Type{jwk.EC256, jwk.EC384, jwk.EC521, jwk.RSA2048, jwk.RSA3072, jwk.RSA4096, jwk.Ed25519} {
		keys[typ] = mustGenerate(t, typ)
	}
	weaker := map[[2]jwk.Type]bool{
		{jwk.EC384, jwk.EC256}: true, {jwk.EC521, jwk.EC384}: true, {jwk.EC521, jwk.EC256}: true,
		{jwk.RSA4096, jwk.RSA3072}: true, {jwk.RSA3072, jwk.RSA2048}: true, {jwk.RSA4096, jwk.RSA2048}: true,
		{jwk.EC256, jwk.RSA2048}: true, {jwk.Ed25519, jwk.RSA2048}: true,
		{jwk.EC384, jwk.RSA4096}: true, {jwk.EC384, jwk.RSA3072}: true, {jwk.EC384, jwk.RSA2048}: true, {jwk.EC384, jwk.Ed25519}: true,
		{jwk.EC521, jwk.RSA4096}: true, {jwk.EC521, jwk.RSA3072}: true, {jwk.EC521, jwk.RSA2048}: true, {jwk.EC521, jwk.Ed25519}: true,
	}
	for ct, cur := range keys {
		for nt, next := range keys {
			err := CheckNextKey(cur, next)
			var we *WeakerKeyError
			if want := weaker[[2]jwk.Type{ct, nt}]; want != errors.As(err, &we) {
				t.Errorf("%s to %s: %v, want weaker %t", ct, nt, err, want)
			}
		}
	}
}

// The announcing side: a certificate announces only next keys it can
// sign with (private), of a kind no weaker than its own.
func TestSelfSignedAnnouncesOnlyWhatItProves(t *testing.T) {
	cur := mustGenerate(t, jwk.EC384)
	if _, err := SelfSigned(cur, CertOptions{Next: []*jwk.Key{mustGenerate(t, jwk.EC384).PublicKey()}}); err == nil {
		t.Error("a public next key was announced: its holder did not sign")
	}
	var weaker *WeakerKeyError
	if _, err := SelfSigned(cur, CertOptions{Next: []*jwk.Key{mustGenerate(t, jwk.EC256)}}); !errors.As(err, &weaker) {
		t.Errorf("a weaker next key: %v, want a *WeakerKeyError", err)
	}
	cert, err := SelfSigned(cur, CertOptions{Next: []*jwk.Key{mustGenerate(t, jwk.EC521)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidUnsignedNextKeys) {
			t.Error("the certificate carries the unsigned form too")
		}
	}
}

// A server that receives a transplanted announcement — a next key's real
// signature, bound to another current key — authorizes nothing, logs it,
// and still admits the client.
func TestAcceptRotationRefusesATransplantedAnnouncement(t *testing.T) {
	srv, cl, ts, log := acceptingRotation(t)
	cl.pin(t, ts.addr(), srv.id.Key)
	// Bob announces his next key; alice copies the announcement.
	bob, bobNext := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	bobs, err := SelfSigned(bob, CertOptions{Next: []*jwk.Key{bobNext}})
	if err != nil {
		t.Fatal(err)
	}
	var copied pkix.Extension
	for _, ext := range bobs.Extensions {
		if ext.Id.Equal(OIDSignedNextKeys) {
			copied = ext
		}
	}
	cl.id = announcerOf(t, cl.id.Key, copied)
	if _, err := roundTrip(ts.addr(), mustConfig(t, cl.client(t, ClientOptions{}), ts.addr())); err != nil {
		t.Fatal(err)
	}
	if p := ts.lastPeer(t); p.Name() != "alice" {
		t.Fatalf("the announcer admitted as %q, want alice", p.Name())
	}
	srv.auth.Reload()
	if d := srv.auth.Decide(bobNext.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != authkeys.Unknown {
		t.Fatalf("a transplanted announcement's key is %v under %q", d.Verdict, d.Entry.Name)
	}
	if !strings.Contains(log.String(), "ignoring the next keys a client announces") || !strings.Contains(log.String(), "did not sign its announcement by key "+cl.id.Key.Fingerprint()) {
		t.Errorf("log:\n%s", log.String())
	}
}

// A client reports a host's announcement in the unsigned form of a key
// not yet pinned — once per rotationRetry — and pins nothing; a host
// whose unsigned announcement holds only keys pinned already is not
// reported.
func TestUpdateHostKeysReportsTheUnsignedForm(t *testing.T) {
	srv := newHome(t, jwk.EC256)
	next := mustGenerate(t, jwk.EC256) // the host's own next key, in the old form
	srv.id = announcerOf(t, srv.id.Key, unsignedAnnouncement(t, next))
	ts := startServer(t, srv, ServerOptions{})
	cl := newHome(t, jwk.EC256)
	srv.authorize(t, "laptop", cl.id.Key)
	cl.pin(t, ts.addr(), srv.id.Key)
	var log testlog.Buffer
	client := cl.client(t, ClientOptions{UpdateHostKeys: UpdateYes, Logger: log.Logger()})
	for range 2 {
		if err := learnTrip(t, client, ts.addr()); err != nil {
			t.Fatal(err)
		}
	}
	cl.host.Reload()
	if cl.host.Decide(ts.addr(), next.SPKIHash()).Verdict == knownhosts.Pinned {
		t.Fatal("a key of the unsigned form was pinned")
	}
	if n := strings.Count(log.String(), "announced in the unsigned form"); n != 1 {
		t.Errorf("%d reports of the unsigned form in 2 connections, want 1:\n%s", n, log.String())
	}

	pinned := newHome(t, jwk.EC256)
	srv.authorize(t, "pinned", pinned.id.Key)
	pinned.pin(t, ts.addr(), srv.id.Key)
	if _, err := pinned.host.AddKey(ts.addr(), next.PublicKey(), knownhosts.AddAnother); err != nil {
		t.Fatal(err)
	}
	var quiet testlog.Buffer
	if err := learnTrip(t, pinned.client(t, ClientOptions{UpdateHostKeys: UpdateYes, Logger: quiet.Logger()}), ts.addr()); err != nil {
		t.Fatal(err)
	}
	if quiet.String() != "" {
		t.Errorf("an unsigned announcement of keys pinned already was reported:\n%s", quiet.String())
	}
}

// The happy path, both sides at once over real sockets: a client and a
// host whose next keys are stronger kinds (P-256 to P-384, P-256 to
// Ed25519) learn each other's next key from certificates keytool makes.
func TestAnnouncedRotationBothWays(t *testing.T) {
	srv, cl := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srvNext, clNext := mustGenerate(t, jwk.EC384), mustGenerate(t, jwk.Ed25519)
	id, err := NewIdentity(srv.id.Key, CertOptions{DNSNames: []string{"localhost"}, Next: []*jwk.Key{srvNext}})
	if err != nil {
		t.Fatal(err)
	}
	srv.id = id
	if id, err = NewIdentity(cl.id.Key, CertOptions{Next: []*jwk.Key{clNext}}); err != nil {
		t.Fatal(err)
	}
	cl.id = id
	var slog, clog testlog.Buffer
	ts := startServer(t, srv, ServerOptions{Logger: slog.Logger()})
	srv.authorize(t, "alice", cl.id.Key)
	if _, err := srv.auth.SetAcceptRotation("alice", true); err != nil {
		t.Fatal(err)
	}
	cl.pin(t, ts.addr(), srv.id.Key)
	if err := learnTrip(t, cl.client(t, ClientOptions{UpdateHostKeys: UpdateYes, Logger: clog.Logger()}), ts.addr()); err != nil {
		t.Fatal(err)
	}
	cl.host.Reload()
	srv.auth.Reload()
	if v := cl.host.Decide(ts.addr(), srvNext.SPKIHash()).Verdict; v != knownhosts.Pinned {
		t.Errorf("the host's next key is %v at the client\n%s", v, clog.String())
	}
	if d := srv.auth.Decide(clNext.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != authkeys.Authorized || d.Entry.Name != "alice" {
		t.Errorf("the client's next key is %v at the server\n%s", d.Verdict, slog.String())
	}
}

// A home whose next key is weaker than its identity (made by hand, or by
// an earlier gen --next) does not load: the key would be announced in
// vain, every peer refusing it. With a next key as strong, it announces
// it, signed.
func TestLoadHomeIdentityRefusesAWeakerNextKey(t *testing.T) {
	h := newHome(t, jwk.EC384)
	if err := jwk.WritePrivateKeyFile(filepath.Join(h.dir, "key.json"), h.id.Key, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	nextFile := filepath.Join(h.dir, "key.next.json")
	if err := jwk.WritePrivateKeyFile(nextFile, mustGenerate(t, jwk.EC256), jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	var weaker *WeakerKeyError
	if id, err := LoadHomeIdentity(h.dir, CertOptions{}); !errors.As(err, &weaker) {
		t.Fatalf("a weaker next key: %v, %v; want a *WeakerKeyError", id, err)
	}
	next := mustGenerate(t, jwk.EC384)
	if err := jwk.WritePrivateKeyFile(nextFile, next, jwk.JWK, jwk.Overwrite); err != nil {
		t.Fatal(err)
	}
	id, err := LoadHomeIdentity(h.dir, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := id.Announced(); len(got) != 1 || !got[0].Equal(next) {
		t.Fatalf("announced %v", got)
	}
}
