package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// connectCommand makes the connect command, with flag variables of its own.
func connectCommand() *command {
	var verbose, visual bool
	var connectTimeout time.Duration
	return &command{
		name:    "connect",
		uses:    globalHome | globalIdentity | globalHostKeys | globalPKI,
		args:    "[-v] [--purpose P] ADDR",
		summary: "open a mutual TLS connection to ADDR, piped to standard input and output",
		help: `Connects to ADDR (host:port) over mutual TLS, presenting the identity and
checking the server's key against trusted_hosts.d under --strict-host-keys
(an unknown host is asked about on the terminal, or refused with the
'keytool trust-host' command to run), then copies standard input to the
connection and the connection to standard output, like 'ssh -W' or
'openssl s_client -quiet'. The end of standard input closes the sending
side only (TLS close_notify); keytool exits when the server closes the
connection.

--purpose P: the connection is for purpose P. Pins for other purposes
(keytool trust-host --purpose) are not there for it, and yes to the
first-use question pins the key for P only. In PKI mode, a server whose key
is not pinned is verified by the CAs installed for P (keytool ca add
--purpose P) if there are any, else by the general CAs; never by another
purpose's.

While connected, the server's key is decided again whenever the trusted
hosts or the revoked keys change (and every second in PKI mode, for the
CRL): if its pin is removed, another key is pinned for ADDR, the key is
revoked or a revocation file cannot be read, the connection is closed
within a second and connect exits 1, naming the key and why.

-v prints the server's key type, fingerprint and why it is trusted
(pinned, PKI, accepted once, not verified) on standard error.

--visual-host-key draws the server key's randomart in the first-use
question (OpenSSH's VisualHostKey). The answer no refuses, as ssh does:
"Host key verification failed.", exit 1.

--connect-timeout bounds the TCP connection and the TLS handshake (default
30s; the time spent answering the first-use question does not count). A port
that accepts and never speaks TLS fails after it ("no TLS handshake from
ADDR within 30s"); a port that answers in plain text fails at once.

Exit status 1 when the server's key has changed, when the host is not
trusted, when the server refuses this client's key (with the command its
administrator can run; a keytool server that let the client in only to
answer keytool's HTTP 403 for its key, as 'keytool proxy --enroll' does,
refuses it too: the answer is piped, then connect names the key and how to
enroll or be authorized), and when the server closes the connection before
sending a byte while standard input is still open, or resets it before
sending a byte (keytool proxy resets it when the service behind it is
down). Once standard input has ended, a server that closes without
answering is a normal end.

` + hostDNSHelp("Host keys in DNS", "") + `
Example:
  printf 'GET / HTTP/1.0\r\n\r\n' | keytool connect -v web.example:8443`,
		flags: func(set *pflag.FlagSet, c *cli) {
			set.StringVar(&c.purpose, "purpose", "", "the connection is for `PURPOSE`: only its pins and those for every purpose count (trust-host --purpose), yes pins for it alone, and in PKI mode its CAs (ca add --purpose) verify an unpinned server")
			c.hostDNS.register(set)
			c.registerUpdateHostKeys(set)
			set.BoolVarP(&verbose, "verbose", "v", false, "print the server's key and trust on standard error")
			set.BoolVar(&visual, "visual-host-key", false, "draw the server key's randomart in the first-use question")
			set.DurationVar(&connectTimeout, "connect-timeout", 30*time.Second, "give up if the TCP connection and TLS handshake take longer than `DURATION`")
		},
		run: func(c *cli, args []string) error {
			if len(args) != 1 {
				return usagef("connect takes one ADDR (host:port)")
			}
			if _, port, err := net.SplitHostPort(args[0]); err != nil || port == "" {
				return usagef("ADDR must be host:port (a port is required), not %q", args[0])
			}
			if connectTimeout <= 0 {
				return usagef("--connect-timeout must be positive, not %v", connectTimeout)
			}
			if err := checkConnectionPurpose(c.purpose); err != nil {
				return err
			}
			return c.connect(args[0], verbose, visual, connectTimeout)
		},
	}
}

func (c *cli) connect(addr string, verbose, visual bool, timeout time.Duration) error {
	// Watched, so that the connection ends when the host's key stops
	// being trusted while it is open (live revocation, below).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hopts := knownhosts.HomeOptions(c.home)
	hopts.Logger = c.logger()
	hosts := knownhosts.Open(ctx, hopts)
	client, id, _, err := c.newClient(hosts, tlsbridge.Terminal{Visual: visual}, c.logger(), timeout)
	if err != nil {
		return err
	}
	conn, err := client.DialContext(ctx, "tcp", addr)
	if err != nil {
		err = handshakeFailure(err, addr, timeout)
	}
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
		viaCA := false
		if pki != nil {
			v, err := pki.VerifyPurpose(c.purpose, cs.PeerCertificates, x509.ExtKeyUsageServerAuth, cs.ServerName)
			viaCA = err == nil && v != nil
		}
		otherwise := "accepted once"
		if client.AcceptedByDNS(addr, cs) {
			otherwise = trustDNS
		}
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
			hostTrust(conn, hosts, addr, c.purpose, viaCA, otherwise))
	}
	// Live revocation: the host's key decided again on each change of
	// the trusted hosts (and every second in PKI mode); the connection
	// closed when it is no longer trusted, and connect fails saying why.
	live := client.Live(tlsbridge.LiveOptions{Changes: hosts, Logger: slog.New(slog.DiscardHandler)})
	defer live.Close()
	var withdrawn atomic.Pointer[hostWithdrawnError]
	defer live.TrackConn(tlsbridge.Tracked{Conn: conn, State: conn.ConnectionState(), Addr: addr, Close: func(reason error) {
		withdrawn.Store(&hostWithdrawnError{addr: addr, fingerprint: spkiFingerprintOf(conn), reason: reason})
		_ = conn.NetConn().Close()
	}})()
	err = c.pipe(conn, addr, id)
	if w := withdrawn.Load(); w != nil {
		return w
	}
	return err
}

// hostWithdrawnError: the connection was closed because the host's key
// stopped being trusted while it was open (its pin removed, the key
// revoked or pinned to another, a revocation file unreadable). It does
// not unwrap to the reason: the advice for a refused handshake (the
// changed-key warning above all) is not about a pin changed here.
type hostWithdrawnError struct {
	addr, fingerprint string
	reason            error
}

func (e *hostWithdrawnError) Error() string {
	return fmt.Sprintf("closed the connection to %s: its key %s is no longer trusted (%v)", e.addr, e.fingerprint, e.reason)
}

// spkiFingerprintOf is the fingerprint of the key the server presented.
func spkiFingerprintOf(conn *tls.Conn) string {
	cs := conn.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return jwk.FormatFingerprint(sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo))
}
