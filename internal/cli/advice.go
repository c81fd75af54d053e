package cli

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/knownhosts"
)

// The libraries' errors carry data and say what happened, in one line;
// the command line turns them into advice: the commands that fix the
// situation, spelled with the -H and -i the user ran, so that each one
// works when pasted (docs/design.md, "Errors carry data; the command line
// speaks").

// advise returns err's message followed by the advice for it, if any.
func (c *cli) advise(err error) string {
	// OpenSSH's changed-key warning says everything the error does; the
	// one-line error before it would only repeat it.
	var changed *knownhosts.KeyChangedError
	if errors.As(err, &changed) {
		var repin *repinError
		errors.As(err, &repin) // nil: the key is given back by its fingerprint
		return c.keyChangedAdvice(changed, repin)
	}
	// Errors may quote what a remote peer sent (x509's list of a
	// certificate's names): nothing of it may drive the terminal, nor
	// start a line of its own under keytool's.
	msg := termtext.SafeLines(quoteRemoteNames(err))
	for _, adviser := range []func(error) string{c.adviseHostScope, c.adviseStores, c.adviseSync, adviseName, c.adviseFiles, c.adviseEnroll, c.adviseTLS, c.adviseDial} {
		if a := adviser(err); a != "" {
			return msg + "\n" + strings.TrimRight(a, "\n")
		}
	}
	return msg
}

// quoteRemoteNames is err's message with the names of a server's
// certificate that x509 lists as they are (a *x509.HostnameError lists its
// DNS names: an IA5String, which may hold a newline) quoted by
// termtext.Safe, so that SafeLines, which keeps the message's own lines,
// cannot keep one of the certificate's. x509's own sentence is made again
// from the quoted names, in one piece: quoting name after name in the
// message let a name hidden in another (found by review: "\a" inside
// "x\n<a line of the server's>\n\a") unquote the longer one. A
// message that does not hold x509's sentence as it is, is quoted whole.
func quoteRemoteNames(err error) string {
	msg := err.Error()
	var he x509.HostnameError // x509 returns it as a value
	if !errors.As(err, &he) || he.Certificate == nil {
		return msg
	}
	cert := *he.Certificate
	cert.DNSNames = make([]string, len(he.Certificate.DNSNames))
	unsafe := false
	for i, name := range he.Certificate.DNSNames {
		cert.DNSNames[i] = termtext.Safe(name)
		unsafe = unsafe || cert.DNSNames[i] != name
	}
	if !unsafe {
		return msg
	}
	raw := he.Error()
	if !strings.Contains(msg, raw) {
		return termtext.Safe(msg)
	}
	return strings.ReplaceAll(msg, raw, x509.HostnameError{Certificate: &cert, Host: he.Host}.Error())
}

// pinCommand spells the trust-host command that pins a key for addr,
// given by key (--fingerprint FP, --key FILE), for the purposes trust-host
// was asked to pin for (--purpose), else the purpose of the connection
// that met the key (connect --purpose): the pin the advice makes is no
// wider than the one asked for.
func (c *cli) pinCommand(addr string, key ...string) string {
	purposes := c.pinPurposes
	if len(purposes) == 0 && c.purpose != "" {
		purposes = []string{c.purpose}
	}
	return c.pinCommandFor(purposes, addr, key...)
}

// pinCommandFor is pinCommand for the purposes given (none: every one).
func (c *cli) pinCommandFor(purposes []string, addr string, key ...string) string {
	args := append([]string{"trust-host", shellQuote(addr)}, key...)
	if len(purposes) > 0 {
		args = append(args, "--purpose", strings.Join(purposes, ","))
	}
	return c.command(args...)
}

// command spells a keytool command with the global flags that reproduce
// the current home and identity.
func (c *cli) command(args ...string) string {
	var b strings.Builder
	b.WriteString("keytool")
	b.WriteString(c.homeFlag())
	// -i only where the command uses the identity: authorize, revoke
	// and bundle refuse it (bad usage), so the advice would not run.
	var cmd *command
	if len(args) > 0 {
		cmd = c.commands[args[0]]
	}
	if c.identity != "" && (cmd == nil || cmd.globals()&globalIdentity != 0) {
		b.WriteString(" -i " + shellQuote(c.identity))
	}
	for _, a := range args {
		b.WriteString(" " + a)
	}
	return b.String()
}

// adviseDial returns the advice for a connection nothing accepted at the
// address dialled, most often a mistyped port, or "".
func (c *cli) adviseDial(err error) string {
	var op *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) && errors.As(err, &op) && op.Op == "dial" && op.Addr != nil {
		return fmt.Sprintf("Nothing accepts connections at %s: check the address and port, and that the server runs there", op.Addr)
	}
	return ""
}
