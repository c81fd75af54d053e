package tlsbridge

import (
	"crypto/x509"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// BenchmarkVerifyPurpose is PKI mode's decision on a chain, with the CAs
// of the tier in one bundle (ca.pem) or installed one file each in ca.d:
// the cost of a handshake's CA decision as the number of installed CAs
// grows (each CA with a subject of its own, as real ones have). "first"
// verifies the chain (a client's first connection, or a chain the cache
// no longer holds); "again" asks about it again, as PeerOf does at each
// HTTP request and a client's next connection does, which the state's
// verifiedCache answers. Run:
// go test ./tlsbridge -run XXX -bench VerifyPurpose
func BenchmarkVerifyPurpose(b *testing.B) {
	for _, n := range []int{1, 100} {
		cas := make([]*testCA, n)
		var bundle []byte
		dir := b.TempDir()
		for i := range cas {
			cas[i] = newNamedCA(b, fmt.Sprintf("Org %d CA", i))
			pem, _ := os.ReadFile(cas[i].caFile())
			bundle = append(bundle, pem...)
			if _, err := InstallCA(filepath.Join(dir, "ca.d"), CAInstall{CA: pem, Name: fmt.Sprintf("ca%d", i)}); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "ca.pem"), bundle, 0o644); err != nil {
			b.Fatal(err)
		}
		chain := []*x509.Certificate{cas[n-1].issue(b, mustGenerate(b, jwk.EC256)).Certificate.Leaf}
		for _, layout := range []string{"ca.pem", "ca.d"} {
			opts := PKIOptions{CA: filepath.Join(dir, "ca.pem"), Home: dir}
			if layout == "ca.d" {
				opts = PKIOptions{Dir: filepath.Join(dir, "ca.d"), Home: dir}
			}
			p, err := LoadPKI(opts)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/%d/first", layout, n), func(b *testing.B) {
				b.ReportAllocs()
				st := p.current()
				for b.Loop() {
					if _, err := st.verifyPurpose("", chain, x509.ExtKeyUsageServerAuth, "", time.Now()); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/%d/again", layout, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageServerAuth, ""); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPKIIndex is PKI mode's decision on a leaf sent alone, whose
// issuing CA and root are installed apart in ca.d with their CRLs: the
// chain crypto/x509 verifies is completed up to the root, and each of its
// certificates checked against its issuer's CRL. "computed" checks the
// signatures between the CAs and of the CRLs at each decision, as before
// the index (computedPKI); "indexed" looks them up. Both verify the chain
// each time (verifyFresh), as a first connection does. Run:
// go test ./tlsbridge -run '^$' -bench PKIIndex -count 3
func BenchmarkPKIIndex(b *testing.B) {
	f := newChainFixture(b, false)
	dir := filepath.Join(pkiDir(b), "ca.d")
	for _, in := range []CAInstall{{CA: pkiPEM(f.root), CRL: f.rootCRL, Name: "root"}, {CA: pkiPEM(f.inter), CRL: f.interCRL, Name: "issuing"}} {
		if _, err := InstallCA(dir, in); err != nil {
			b.Fatal(err)
		}
	}
	p, err := LoadPKI(PKIOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	chain := []*x509.Certificate{f.leaf.cert}
	computed := computedPKI(p)
	p.checkedAt.Store(math.MaxInt64) // as computed: no stat of the files a second
	for _, c := range []struct {
		name string
		p    *PKI
	}{{"computed", computed}, {"indexed", p}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := verifyFresh(c.p, chain); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPKIJunkChain is the decision on a peer chain of junk naming 9
// of 100 installed CAs (junkChain), against a valid leaf of one of them
// sent alone: what a peer that holds no certificate can make the server
// spend (the valid leaf verified each time, verifyFresh, as a refusal
// is). Run: go test ./tlsbridge -run '^$' -bench PKIJunkChain -count 3
func BenchmarkPKIJunkChain(b *testing.B) {
	cas, p := installNamed(b, 100)
	p.checkedAt.Store(math.MaxInt64)
	valid := []*x509.Certificate{cas[99].issue(b, mustGenerate(b, jwk.EC256)).Certificate.Leaf}
	junk := junkChain(b, cas[:MaxPeerChain-1])
	b.Run("valid", func(b *testing.B) {
		for b.Loop() {
			if err := verifyFresh(p, valid); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("junk", func(b *testing.B) {
		for b.Loop() {
			if err := p.Verify(junk, x509.ExtKeyUsageClientAuth, ""); err == nil {
				b.Fatal("junk admitted")
			}
		}
	})
}

// verifyFresh is p.Verify of a client chain without the verified chains'
// cache: what a chain's first decision costs.
func verifyFresh(p *PKI, chain []*x509.Certificate) error {
	_, err := p.current().verifyPurpose("", chain, x509.ExtKeyUsageClientAuth, "", time.Now())
	return err
}
