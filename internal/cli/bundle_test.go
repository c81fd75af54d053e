package cli

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// streamBundle writes the chosen keys in the order chosen, each once,
// whichever of its workers makes them: 200 files, one of them chosen
// twice in a row and one key chosen again from another file, plus a
// chosen key its file no longer holds (left out). A file gone is an
// error.
func TestStreamBundleOrder(t *testing.T) {
	dir := t.TempDir()
	var cands []bundleCandidate
	var want []*jwk.Key
	for i := range 200 {
		file := filepath.Join(dir, "k"+strconv.Itoa(i)+".json")
		k := writePublicKey(t, file, nil)
		cands = append(cands, bundleCandidate{file, k.SPKIHash()})
		want = append(want, k)
		if i == 10 {
			cands = append(cands, bundleCandidate{file, k.SPKIHash()}) // the same entry twice
		}
		if i == 20 {
			cands = append(cands, bundleCandidate{cands[0].file, cands[0].sum}) // key 0 again, out of order
			cands = append(cands, bundleCandidate{file, [32]byte{1}})           // not in the file
		}
	}
	var out bytes.Buffer
	n, err := streamBundle(&out, cands)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("wrote %d keys, want %d", n, len(want))
	}
	rest := out.Bytes()
	for i, k := range want {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			t.Fatalf("certificate %d missing", i)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.RawSubjectPublicKeyInfo, k.SPKI()) {
			t.Fatalf("certificate %d is not key %d's: out of order", i, i)
		}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		t.Errorf("more after the last key: %q", rest)
	}

	if err := os.Remove(cands[150].file); err != nil {
		t.Fatal(err)
	}
	if _, err := streamBundle(&out, cands); err == nil {
		t.Error("a chosen file gone: no error")
	}
}

// TestBundleHelpSaysWhatATrustedBundleDrops: a bundle of trusted host
// keys drops each pin's addresses and its purposes, and --help says both.
// (Found by review: it said addresses only.)
func TestBundleHelpSaysWhatATrustedBundleDrops(t *testing.T) {
	stdout, stderr, _ := runKeytool(t, "", "bundle", "--help")
	help := strings.Join(strings.Fields(stdout+stderr), " ")
	for _, want := range []string{"for any host and any purpose", "not only for its addresses and the purposes its pin is limited to"} {
		if !strings.Contains(help, want) {
			t.Errorf("bundle --help lacks %q:\n%s", want, help)
		}
	}
}
