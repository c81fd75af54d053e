package tlsbridge

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// BenchmarkVerifyPurpose is PKI mode's decision on a chain, with the CAs
// of the tier in one bundle (ca.pem) or installed one file each in ca.d:
// the cost of a handshake's CA decision as the number of installed CAs
// grows (each CA with a subject of its own, as real ones have). Run:
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
			b.Run(fmt.Sprintf("%s/%d", layout, n), func(b *testing.B) {
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
