package cli

import (
	"crypto/tls"
	"encoding/pem"
	"net"
	"path/filepath"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"github.com/keytool/keytool/internal/testnet"
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
	cert, _ := certNamed(t, "evil\x1b[2J\x1b]0;owned\x07.example")
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
// each on the line of the message that names them; found by review. So
// too where one unsafe name is part of another ("\a" in "x\n…\n\a"):
// quoting name after name unquoted the longer one, whose line was kept
// (found by review, 2026-12-05).
func TestAdviceKeepsNoLineOfTheServers(t *testing.T) {
	forged := "keytool connect: connected to db.example:443, TLS 1.3: ECDSA P-256 key SHA256:x, pinned"
	for _, tc := range []struct {
		name   string
		names  []string
		quoted string // as the advice must show it
	}{
		{"newline", []string{"other.example", "evil.example\n" + forged}, `"evil.example\n` + forged + `"`},
		{"name within a name", []string{"\x07", "x\n" + forged + "\n\x07"}, `"x\n` + forged + `\n\a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, _ := certNamed(t, tc.names...)
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
			if !strings.Contains(out, tc.quoted) {
				t.Errorf("the name is not shown quoted (%s): %q", tc.quoted, out)
			}
		})
	}
}

// The same through keytool connect in PKI mode (a ca.pem in the home):
// any server whose key is not pinned — no CA's signature needed, x509
// checks the host name before it builds a chain — could put a line of
// its own under keytool's on the user's terminal.
func TestConnectPKIServerNamesKeepNoLine(t *testing.T) {
	client := newClientHome(t)
	now := time.Now()
	_, _, caDER := pxCA(t, now.Add(-time.Hour), now.Add(24*time.Hour))
	pxWrite(t, filepath.Join(client, "ca.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	forged := "keytool connect: connected to localhost, TLS 1.3: ECDSA P-256 key SHA256:x, pinned"
	cert, key := certNamed(t, "\x07", "x\n"+forged+"\n\x07")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	testnet.ServeEach(t, ln, func(c net.Conn) { _ = c.(*tls.Conn).Handshake() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_, stderr, code := keytoolIn(t, client, "connect", "localhost:"+port) // a name: x509 lists the certificate's names
	if code != 1 || !strings.Contains(stderr, `\n`+forged) {
		t.Errorf("exit %d, want 1 and the names quoted; stderr:\n%s", code, stderr)
	}
	for _, line := range strings.Split(stderr, "\n") {
		if line == forged {
			t.Errorf("the server's line is shown as keytool's, on a line of its own:\n%s", stderr)
		}
	}
}

// certNamed is a self-signed certificate of a new P-256 key, valid for
// an hour, for the DNS names given as they are (an IA5String may hold
// any ASCII), and its key.
func certNamed(t *testing.T, names ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: names}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
