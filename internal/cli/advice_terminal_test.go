package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/tlsbridge"
)

// An error may quote what a remote peer sent: x509's HostnameError lists
// the DNS names of the certificate a server presented, and an IA5String
// may hold ESC and BEL. Printed as it is, any server could write to the
// user's terminal (move the cursor, rewrite the fingerprint shown above,
// set the window title). The message reaches the terminal with its
// control characters escaped, its lines kept.
func TestAdviceEscapesTheTerminal(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"evil\x1b[2J\x1b]0;owned\x07.example"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	herr := cert.VerifyHostname("db.example")
	if herr == nil || !strings.Contains(herr.Error(), "\x1b") {
		t.Fatalf("the premise: x509's error quotes the names as they are: %v", herr)
	}
	c := &cli{}
	out := c.advise(&tlsbridge.CARefusedError{File: "ca.pem", Err: herr})
	for _, r := range out {
		if r < 0x20 && r != '\n' || r == 0x7f {
			t.Fatalf("advice holds control character %q:\n%q", r, out)
		}
	}
	if !strings.Contains(out, `\x1b[2J`) {
		t.Errorf("the escaped names are not shown: %q", out)
	}
}

// A newline in a certificate's DNS name (an IA5String may hold one) is
// not one of keytool's lines: kept as it was, a server could add a line
// of its choosing under keytool's own — "keytool connect: connected to
// …, pinned" — to a refusal. The names x509 quotes are shown quoted,
// each on the line of the message that names them; found by review.
func TestAdviceKeepsNoLineOfTheServers(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := "keytool connect: connected to db.example:443, TLS 1.3: ECDSA P-256 key SHA256:x, pinned"
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"other.example", "evil.example\n" + forged}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	herr := cert.VerifyHostname("db.example")
	if herr == nil || !strings.Contains(herr.Error(), "\n"+forged) {
		t.Fatalf("the premise: x509's error quotes the names as they are: %v", herr)
	}
	c := &cli{}
	out := c.advise(&tlsbridge.CARefusedError{File: "ca.pem", Err: herr})
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "keytool connect:") {
			t.Errorf("the server's line is shown as keytool's:\n%s", out)
		}
	}
	if !strings.Contains(out, `"evil.example\n`+forged+`"`) {
		t.Errorf("the name is not shown quoted: %q", out)
	}
}
