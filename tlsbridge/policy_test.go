package tlsbridge

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/jwk"
)

// gotOK finds the server's "ok" line in openssl's output.
var gotOK = regexp.MustCompile(`(?m)^\s*ok\r?$`)

// TestPolicyAgainstOpenSSL offers a keytool server what principle 7 rules
// out, with openssl s_client as the client, and checks that the server
// itself refuses: each case expects the server's alert, not a client-side
// failure. Control cases show that openssl can get in when it follows the
// policy. It runs with an ECDSA and with an RSA server key, because a
// suite is only a real offer to a server whose key can serve it: RSA key
// exchange and DHE-RSA are tried against the RSA key, where refusing them
// is the policy's doing and not the key's.
//
// seed 000: "The supported protocol must be TLS1.2 or better. All
// communications must use perfect forward secrecy and ciphers must be
// limited to strong elliptic curve ones", "only SHA-2 signatures should be
// trusted", "no reason to support any backward compatibility to broken
// protocol or ciphers".
func TestPolicyAgainstOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (.ci/run installs it)")
	}
	t.Run("ecdsa", func(t *testing.T) { testPolicyAgainstOpenSSL(t, jwk.EC256) })
	t.Run("rsa", func(t *testing.T) { testPolicyAgainstOpenSSL(t, jwk.RSA2048) })
}

func testPolicyAgainstOpenSSL(t *testing.T, typ jwk.Type) {
	rsa := typ == jwk.RSA2048
	srv := newHome(t, typ)
	srv.authorize(t, "openssl", srv.id.Key) // openssl presents the server's own identity
	ts := startServer(t, srv, ServerOptions{})
	dir := t.TempDir()
	key, err := srv.id.Key.MarshalPrivate(jwk.PEM)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, certFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, srv.id.CertificatePEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	// sClient returns openssl's standard output (where the server's "ok"
	// appears) and everything it printed (for the alerts).
	sClient := func(stdin string, args ...string) (stdout, all string) {
		args = append([]string{"s_client", "-connect", ts.addr(), "-cert", certFile, "-key", keyFile}, args...)
		cmd := exec.Command("openssl", args...)
		var o, e syncBuffer
		cmd.Stdout, cmd.Stderr = &o, &e
		exited := make(chan struct{})
		defer close(exited)
		if stdin != "" {
			// Type the input once the server's "ok" has arrived, as a
			// person would (typed earlier, a renegotiation races the
			// server's data), then keep stdin open until s_client exits by
			// itself (it stops at the end of its input), at most 10 s.
			w, err := cmd.StdinPipe() // an OS pipe: Wait does not wait for the writer
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				defer w.Close()
				deadline := time.After(10 * time.Second)
				for !gotOK.MatchString(o.String()) {
					select {
					case <-exited:
						return
					case <-deadline:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
				_, _ = io.WriteString(w, stdin)
				select {
				case <-exited:
				case <-deadline:
				}
			}()
		}
		_ = cmd.Run()
		return o.String(), o.String() + e.String()
	}

	const lowSecurity = "DEFAULT:@SECLEVEL=0" // lets openssl offer what it would not by default
	sig, control12 := "ECDSA", "ECDHE-ECDSA-AES128-GCM-SHA256"
	if rsa {
		sig, control12 = "RSA", "ECDHE-RSA-AES128-GCM-SHA256"
	}
	for _, tc := range []struct {
		name    string
		rsaOnly bool // a suite only an RSA key can serve
		args    []string
		alert   string
	}{
		{"TLS 1.0", false, []string{"-tls1", "-cipher", lowSecurity}, "alert protocol version"},
		{"TLS 1.1", false, []string{"-tls1_1", "-cipher", lowSecurity}, "alert protocol version"},
		{"RSA key exchange", true, []string{"-tls1_2", "-cipher", "AES128-GCM-SHA256"}, "alert handshake failure"},
		{"RSA key exchange, CBC", true, []string{"-tls1_2", "-cipher", "AES128-SHA:" + lowSecurity[len("DEFAULT:"):]}, "alert handshake failure"},
		{"non-ECDHE (DHE)", true, []string{"-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:" + lowSecurity[len("DEFAULT:"):]}, "alert handshake failure"},
		{"CBC suite", false, []string{"-tls1_2", "-cipher", "ECDHE-" + sig + "-AES128-SHA"}, "alert handshake failure"},
		{"CBC suite with SHA-256", false, []string{"-tls1_2", "-cipher", "ECDHE-" + sig + "-AES128-SHA256"}, "alert handshake failure"},
		{"SHA-1 signatures", false, []string{"-tls1_2", "-sigalgs", sig + "+SHA1", "-cipher", lowSecurity}, "alert handshake failure"},
	} {
		if tc.rsaOnly && !rsa {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			stdout, out := sClient("", tc.args...)
			if !strings.Contains(out, tc.alert) {
				t.Errorf("want the server's %q; openssl said:\n%s", tc.alert, out)
			}
			if gotOK.MatchString(stdout) {
				t.Errorf("openssl got through:\n%s", out)
			}
		})
	}
	t.Run("control: TLS 1.2 "+control12, func(t *testing.T) {
		if stdout, out := sClient("", "-quiet", "-tls1_2", "-cipher", control12); !gotOK.MatchString(stdout) {
			t.Errorf("a client within the policy was refused:\n%s", out)
		}
	})
	t.Run("control: TLS 1.3", func(t *testing.T) {
		if stdout, out := sClient("", "-quiet", "-tls1_3"); !gotOK.MatchString(stdout) {
			t.Errorf("a TLS 1.3 client was refused:\n%s", out)
		}
	})
	if rsa {
		return // renegotiation does not depend on the key
	}
	t.Run("renegotiation", func(t *testing.T) {
		ts.holdOpen.Store(true)
		defer ts.holdOpen.Store(false)
		_, out := sClient("R\n", "-tls1_2")
		if !strings.Contains(out, "RENEGOTIATING") || !strings.Contains(out, "alert unexpected message") {
			t.Errorf("want the renegotiation refused with the server's unexpected_message alert:\n%s", out)
		}
	})
}

// syncBuffer is the module's one log buffer for tests.
type syncBuffer = testlog.Buffer

// The option types print their command-line names, and a value out of
// range prints as itself rather than panicking or passing for a valid one
// (an UpdateHostKeys(7) is not "no").
func TestOptionStringsOutOfRange(t *testing.T) {
	for _, c := range []struct {
		v    fmt.Stringer
		want string
	}{
		{Strict, "yes"}, {Insecure, "no"}, {Policy(7), "Policy(7)"}, {Policy(-1), "Policy(-1)"},
		{HostKeyDNS(0), "no"}, {HostKeyDNS(9), "HostKeyDNS(9)"},
		{UpdateNo, "no"}, {UpdateYes, "yes"}, {UpdateHostKeys(7), "UpdateHostKeys(7)"},
	} {
		if got := c.v.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.v, got, c.want)
		}
	}
}
