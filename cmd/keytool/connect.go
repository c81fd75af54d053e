package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// connectCommand makes the connect command, with flag variables of its own.
func connectCommand() *command {
	var verbose, visual bool
	return &command{
		name:    "connect",
		args:    "[-v] ADDR",
		summary: "open a mutual TLS connection to ADDR, piped to standard input and output",
		help: `Connects to ADDR (host:port) over mutual TLS, presenting the identity and
checking the server's key against trusted_hosts.d under --strict-host-keys
(an unknown host is asked about on the terminal, or refused with the
'keytool trust-host' command to run), then copies standard input to the
connection and the connection to standard output, like 'ssh -W' or
'openssl s_client -quiet'. The end of standard input closes the sending
side only (TLS close_notify); keytool exits when the server closes the
connection.

-v prints the server's key type, fingerprint and why it is trusted
(pinned, PKI, accepted once, not verified) on standard error.

--visual-host-key draws the server key's randomart in the first-use
question (OpenSSH's VisualHostKey). The answer no refuses, as ssh does:
"Host key verification failed.", exit 1.

Exit status 1 when the server's key has changed, when the host is not
trusted, or when the server refuses this client's key (with the command its
administrator can run).

Example:
  printf 'GET / HTTP/1.0\r\n\r\n' | keytool connect -v web.example:8443`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			set.BoolVarP(&verbose, "verbose", "v", false, "print the server's key and trust on standard error")
			set.BoolVar(&visual, "visual-host-key", false, "draw the server key's randomart in the first-use question")
		},
		run: func(c *cli, args []string) error {
			if len(args) != 1 {
				return usagef("connect takes one ADDR (host:port)")
			}
			if _, port, err := net.SplitHostPort(args[0]); err != nil || port == "" {
				return usagef("ADDR must be host:port (a port is required), not %q", args[0])
			}
			return c.connect(args[0], verbose, visual)
		},
	}
}

func (c *cli) connect(addr string, verbose, visual bool) error {
	hosts := c.hostStore()
	client, id, _, err := c.newClient(hosts, tlsbridge.Terminal{Visual: visual}, c.logger())
	if err != nil {
		return err
	}
	conn, err := client.DialContext(context.Background(), "tcp", addr)
	if refusedByUser(err) {
		fmt.Fprintln(c.stderr, hostKeyFailed)
		return &exitError{1}
	}
	if err != nil {
		return c.explainRefusal(err, addr, id)
	}
	defer conn.Close()
	if verbose {
		cs := conn.ConnectionState()
		leaf := cs.PeerCertificates[0] // VerifyConnection made sure there is one
		alg := "unknown"
		if k, err := jwk.NewPublicKey(leaf.PublicKey); err == nil {
			alg = k.Algorithm()
		}
		pki, _ := c.pki() // newClient loaded it already
		otherwise := "accepted once"
		if policy, _ := c.policy(); policy == tlsbridge.Insecure {
			otherwise = "NOT verified (insecure)"
		}
		where := addr
		if ra := conn.RemoteAddr().String(); ra != addr {
			where += " (" + ra + ")"
		}
		fmt.Fprintf(c.stderr, "keytool connect: connected to %s, %s: %s key %s, %s\n",
			where, tls.VersionName(cs.Version), alg,
			jwk.FormatFingerprint(sha256.Sum256(leaf.RawSubjectPublicKeyInfo)),
			hostTrust(conn, hosts, addr, pki != nil, otherwise))
	}
	go func() {
		// End of input: close our sending side only, and keep reading
		// what the server still has to say.
		if _, err := io.Copy(conn, c.stdin); err == nil {
			_ = conn.CloseWrite()
		}
	}()
	if _, err := io.Copy(c.stdout, conn); err != nil {
		return c.explainRefusal(err, addr, id)
	}
	return nil
}
