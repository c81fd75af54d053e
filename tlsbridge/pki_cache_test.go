package tlsbridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/keytool/keytool/jwk"
)

// setClock makes VerifyPurpose verify at *at for the rest of the test.
func setClock(t *testing.T, at *time.Time) {
	t.Cleanup(func() { pkiNow = time.Now })
	pkiNow = func() time.Time { return *at }
}

// leafFor issues a client certificate for a new key, valid from
// notBefore to notAfter.
func (ca *testCA) leafFor(t *testing.T, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: "client"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeCRLUntil replaces the CA's CRL by an empty one whose nextUpdate is
// next.
func (ca *testCA) writeCRLUntil(t *testing.T, this, next time.Time) {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()),
		ThisUpdate: this, NextUpdate: next}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ca.crlFile(), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}

// A chain verified once is answered again without its signatures being
// checked (PeerOf asks at every request) — but only until the first
// instant its answer could change: then it is verified again. Here the
// state's CA pool is emptied behind the cache's back after the first
// verification: the answers that still admit the chain come from the
// cache, the refusal once the CRL's nextUpdate has passed from a
// verification done again.
func TestVerifiedChainAnsweredAgainUntilABoundary(t *testing.T) {
	t0 := time.Now()
	ca := newCA(t)
	ca.writeCRLUntil(t, t0.Add(-time.Minute), t0.Add(10*time.Minute))
	p := ca.pki(t)
	leaf := ca.leafFor(t, t0.Add(-time.Hour), t0.Add(time.Hour))
	at := t0
	setClock(t, &at)
	chain := []*x509.Certificate{leaf}
	first, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range p.state.Load().all {
		set.roots = x509.NewCertPool() // nothing verifies now, but from the cache
	}
	at = t0.Add(9 * time.Minute)
	again, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, "")
	if err != nil {
		t.Fatalf("the same chain again, before any boundary: %v (not answered from the cache)", err)
	}
	if again == first || again.File != first.File || len(again.Chain) != len(first.Chain) {
		t.Errorf("the answer again: %+v, want a copy of %+v", again, first)
	}
	at = t0.Add(10*time.Minute + time.Second)
	if _, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Fatal("after the CRL's nextUpdate: admitted from the cache, want a verification again (refused: no CA left)")
	}
}

// Each instant at which a verified chain's answer could change ends what
// the cache keeps: a certificate of the chain or a CA expiring, a CRL
// expiring — and a clock set back before the verification. Past it, the
// refusal a fresh verification gives is given.
func TestVerifiedChainNotKeptPastABoundary(t *testing.T) {
	t0 := time.Now()
	for _, tc := range []struct {
		name string
		// setup returns the CA and the leaf; the CA's CRL is current
		// until t0+1h unless setup says otherwise.
		setup func(t *testing.T) (*testCA, *x509.Certificate)
		later time.Duration // when to ask again
		want  string        // in the refusal
	}{
		{"the leaf expires", func(t *testing.T) (*testCA, *x509.Certificate) {
			ca := newCA(t)
			return ca, ca.leafFor(t, t0.Add(-time.Hour), t0.Add(10*time.Minute))
		}, 11 * time.Minute, "expired"},
		{"the CRL expires", func(t *testing.T) (*testCA, *x509.Certificate) {
			ca := newCA(t)
			ca.writeCRLUntil(t, t0.Add(-time.Minute), t0.Add(10*time.Minute))
			return ca, ca.leafFor(t, t0.Add(-time.Hour), t0.Add(time.Hour))
		}, 11 * time.Minute, "expired"},
		{"the CA expires", func(t *testing.T) (*testCA, *x509.Certificate) {
			ca := newCAUntil(t, t0.Add(10*time.Minute))
			return ca, ca.leafFor(t, t0.Add(-time.Hour), t0.Add(time.Hour))
		}, 11 * time.Minute, "expired"},
		{"the clock is set back", func(t *testing.T) (*testCA, *x509.Certificate) {
			ca := newCA(t)
			ca.writeCRLUntil(t, t0.Add(-3*time.Hour), t0.Add(time.Hour))
			return ca, ca.leafFor(t, t0.Add(-time.Hour), t0.Add(time.Hour))
		}, -2 * time.Hour, "not yet valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, leaf := tc.setup(t)
			p := ca.pki(t)
			at := t0
			setClock(t, &at)
			chain := []*x509.Certificate{leaf}
			if _, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, ""); err != nil {
				t.Fatal(err)
			}
			at = t0.Add(tc.later)
			_, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, "")
			var refused *CARefusedError
			if !errors.As(err, &refused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("at %v: %v, want a *CARefusedError saying %q", tc.later, err, tc.want)
			}
		})
	}
}

// newCAUntil is newCA for a CA certificate that expires at notAfter.
func newCAUntil(t *testing.T, notAfter time.Time) *testCA {
	ca := newCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Short-lived CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca.cert, _ = x509.ParseCertificate(der)
	ca.key = key
	if err := os.WriteFile(ca.caFile(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	ca.writeCRL(t)
	return ca
}

// A chain is asked about with its purpose, usage and host name: an
// answer for one is never the answer for another.
func TestVerifiedKeyTellsQuestionsApart(t *testing.T) {
	ca := newCA(t)
	a := ca.leafFor(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	b := ca.leafFor(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	seen := map[[32]byte]string{}
	for _, q := range []struct {
		purpose string
		chain   []*x509.Certificate
		usage   x509.ExtKeyUsage
		dns     string
	}{
		{"", []*x509.Certificate{a}, x509.ExtKeyUsageClientAuth, ""},
		{"", []*x509.Certificate{b}, x509.ExtKeyUsageClientAuth, ""},
		{"", []*x509.Certificate{a, b}, x509.ExtKeyUsageClientAuth, ""},
		{"", []*x509.Certificate{a}, x509.ExtKeyUsageServerAuth, ""},
		{"", []*x509.Certificate{a}, x509.ExtKeyUsageClientAuth, "host"},
		{"host", []*x509.Certificate{a}, x509.ExtKeyUsageClientAuth, ""},
		{"docker", []*x509.Certificate{a}, x509.ExtKeyUsageClientAuth, ""},
	} {
		name := fmt.Sprintf("%+v", q)
		k := verifiedKey(q.purpose, q.chain, q.usage, q.dns)
		if other, ok := seen[k]; ok {
			t.Errorf("%s has the key of %s", name, other)
		}
		seen[k] = name
	}
}

// The cache holds at most maxVerified chains: a server seeing more
// clients starts again from empty rather than grow.
func TestVerifiedCacheBounded(t *testing.T) {
	c := newVerifiedCache(nil)
	now := time.Now()
	for i := range maxVerified + 10 {
		var k [32]byte
		k[0], k[1] = byte(i), byte(i>>8)
		c.put(k, nil, &CAVerified{}, now)
		if len(c.m) > maxVerified {
			t.Fatalf("%d chains kept, want at most %d", len(c.m), maxVerified)
		}
	}
}

// wallSetBack is now as time.Now reads it once the system clock has been
// set back by d: its wall clock d earlier, its monotonic reading — which
// no setting of the clock moves — unchanged. No API makes such a time;
// this writes time.Time's fields (wall: the hasMonotonic flag and the
// seconds since 1885 above the nanoseconds), and fails if now has no
// monotonic reading to keep.
func wallSetBack(t *testing.T, now time.Time, d time.Duration) time.Time {
	t.Helper()
	type layout struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	const hasMonotonic, nsecShift = 1 << 63, 30
	p := (*layout)(unsafe.Pointer(&now))
	if p.wall&hasMonotonic == 0 {
		t.Fatal("time.Now has no monotonic reading (time.Time's layout changed?)")
	}
	p.wall -= uint64(d/time.Second) << nsecShift
	if got := time.Now().Add(-d); now.Round(0).Sub(got.Round(0)).Abs() > time.Minute {
		t.Fatalf("wallSetBack: %v, want about %v (time.Time's layout changed?)", now.Round(0), got.Round(0))
	}
	return now
}

// A clock set back is seen as set back by the cache too, though times
// read from time.Now compare by their monotonic reading, which does not
// go back: the cache compares wall clocks, as crypto/x509 does (found by
// review).
func TestVerifiedChainNotKeptWhenTheClockIsSetBack(t *testing.T) {
	t0 := time.Now()
	ca := newCA(t)
	ca.writeCRLUntil(t, t0.Add(-3*time.Hour), t0.Add(time.Hour))
	p := ca.pki(t)
	chain := []*x509.Certificate{ca.leafFor(t, t0.Add(-time.Hour), t0.Add(time.Hour))}
	at := time.Now()
	setClock(t, &at)
	if _, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Fatal(err)
	}
	at = wallSetBack(t, time.Now(), 2*time.Hour)
	if _, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, ""); err == nil || !strings.Contains(err.Error(), "not yet valid") {
		t.Fatalf("the clock set back 2 hours, before the leaf's notBefore: %v, want it refused as not yet valid", err)
	}
}

// A certificate is valid at its notAfter and a CRL usable at its
// nextUpdate: one verified at that very instant is kept no later.
func TestVerifiedChainAtItsLastInstant(t *testing.T) {
	t0 := time.Now().Round(0).Truncate(time.Second)
	ca := newCA(t)
	end := t0.Add(10 * time.Minute)
	chain := []*x509.Certificate{ca.leafFor(t, t0.Add(-time.Hour), end)}
	p := ca.pki(t)
	at := end
	setClock(t, &at)
	if _, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Fatal(err)
	}
	at = end.Add(time.Second)
	if _, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Fatal("a second after the leaf's notAfter, verified at it: admitted from the cache")
	}
}

// junkCert is a self-signed certificate of key padded with pad bytes: a
// certificate crypto/x509 ignores when it builds a client's chain.
func junkCert(t testing.TB, key *ecdsa.PrivateKey, serial int64, pad int) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "junk"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: make([]byte, pad)}}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// VerifyConnection asks about a chain before crypto/tls checks the
// client's CertificateVerify, so a peer with someone else's certificate
// — no secret — gets that far without the key. Sent with a different
// junk certificate each time, that chain must not fill the cache (each
// answer would hold its whole Certificate message, and the flood would
// push out the clients the cache holds: found by review); sent as a
// client sends it, with the CA's own certificate along, it is kept, and
// holds a copy of the leaf's DER, not the message it came in.
func TestVerifiedCacheKeepsNoJunk(t *testing.T) {
	ca := newCA(t)
	p := ca.pki(t)
	srv := newHome(t, jwk.EC256)
	s, err := NewServer(srv.id, ServerOptions{Clients: srv.auth, PKI: p})
	if err != nil {
		t.Fatal(err)
	}
	victim := newHome(t, jwk.EC256)
	stolen := ca.issue(t, victim.id.Key).Certificate.Certificate[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := s.TLSConfig()
	errs := make(chan error, 1)
	go func() {
		bl := BudgetListener(ln)
		for {
			c, err := bl.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			err = tls.Server(c, cfg).Handshake()
			c.Close()
			errs <- err
		}
	}()
	attacker, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // not the victim's key
	if err != nil {
		t.Fatal(err)
	}
	kept := func() int {
		st := p.current()
		st.verified.mu.Lock()
		defer st.verified.mu.Unlock()
		return len(st.verified.m)
	}
	for i := range 20 {
		junk := junkCert(t, attacker, int64(i+1), 4<<10)
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return &tls.Certificate{Certificate: [][]byte{stolen, junk}, PrivateKey: attacker}, nil
			}})
		if err == nil {
			_, _ = c.Read(make([]byte, 1))
			c.Close()
		}
		if serr := <-errs; serr == nil || !strings.Contains(serr.Error(), "signature") {
			t.Fatalf("handshake %d: the server says %v, want a failed CertificateVerify", i, serr)
		}
	}
	if n := kept(); n != 0 {
		t.Fatalf("20 chains of a stolen certificate and junk: %d kept, want none", n)
	}

	leaf, err := x509.ParseCertificate(stolen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.VerifyPurpose("", []*x509.Certificate{leaf, ca.cert}, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Fatal(err)
	}
	if n := kept(); n != 1 {
		t.Fatalf("a leaf sent with its CA: %d chains kept, want 1", n)
	}
	st := p.current()
	for _, e := range st.verified.m {
		if got := e.v.Chain[0]; got == leaf || unsafe.SliceData(got.Raw) == unsafe.SliceData(leaf.Raw) {
			t.Error("the kept answer holds the leaf as it was parsed, not a copy of its DER")
		}
	}
}
