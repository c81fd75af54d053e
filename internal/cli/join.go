package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keytool/keytool/enroll"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// joinCommand makes the join command, with flag variables of its own.
func joinCommand() *command {
	return &command{
		name:    "join",
		uses:    globalHome | globalIdentity,
		args:    "TOKEN|-",
		summary: "enroll with a server using a token from keytool invite",
		help: `Reads the token (the argument, or standard input for -), connects to the
token's addresses in order, and checks that the server presents the key the
token names — no question is asked: the token is the check. A different key
stops everything before the secret is sent (someone may be intercepting the
connection). Then it presents this identity's key with the token's secret;
the server authorizes the key under the invitation's name, and join pins the
server's key in HOME/trusted_hosts.d for the addresses where it saw that key
in a handshake: the one it enrolled through, and each other address of the
token that it reaches then (it sends nothing there). The token's other
addresses are listed as "Not verified", unpinned, with the trust-host
command that pins each after checking: a token's addresses are only what
its maker wrote.

On any failure — token mangled in copying, expired, already used, revoked,
wrong secret, wrong server key, server unreachable, too many attempts —
nothing is written on either side, and the message says what to do.

Tokens passed as an argument show in the process list and the shell
history while they are valid; '-' reads one from standard input instead.

Example:
  keytool join keytool-join-1:AAEC…
  keytool join - < token.txt`,
		run: func(c *cli, args []string) error {
			if len(args) != 1 {
				return usagef("join needs one TOKEN (or - to read it from standard input)")
			}
			return c.join(args[0])
		},
	}
}

func (c *cli) join(arg string) error {
	text := arg
	if arg == "-" {
		data, err := io.ReadAll(io.LimitReader(c.stdin, 64<<10))
		if err != nil {
			return fmt.Errorf("reading the token from standard input: %w", err)
		}
		text = string(data)
		if strings.TrimSpace(text) == "" {
			// An empty file or pipe (the invite's output went elsewhere)
			// is not a token with the wrong start.
			return fmt.Errorf("standard input holds no token: give it the output of keytool invite (keytool join - < FILE), or the token as the argument")
		}
	}
	tok, err := enroll.DecodeToken(strings.TrimSpace(text))
	if err != nil {
		return err
	}
	id, err := c.loadIdentity()
	if err != nil {
		return err
	}
	// The server's pin goes in the home: a mistyped -H (the identity
	// given by -i) would spend the one-time token and pin it where no
	// later command reads it (found by review).
	if err := c.homeToWrite(); err != nil {
		return err
	}
	hosts := c.hostStore()
	fmt.Fprintf(c.stderr, "Joining %s as %q; the server must present key %s (from the token).\n", strings.Join(tok.Addresses, " or "), tok.Name, tok.ServerFingerprint())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := enroll.Join(ctx, id, tok, hosts, nil)
	if err != nil {
		return c.alreadyEnrolled(err, tok, hosts, id)
	}
	fmt.Fprintf(c.stdout, "Server %s presented key %s, as the token says.\n", res.Addr, res.ServerFingerprint)
	for _, p := range res.Pins {
		if p.New {
			fmt.Fprintf(c.stdout, "Pinned %s for %s in %s\n", pinnedKeyPhrase(p.File, res.ServerFingerprint), p.Addr, termtext.Safe(p.File))
		} else {
			fmt.Fprintf(c.stdout, "%s was already pinned to %s (%s)\n", p.Addr, res.ServerFingerprint, termtext.Safe(p.File))
		}
	}
	fmt.Fprintf(c.stdout, "Enrolled: the server authorized this client's key %s as %q\n", res.ClientFingerprint, res.Name)
	c.reportUnverified(res)
	return nil
}

// reportUnverified names the token's addresses where join did not see the
// server's key, which it did not pin, and the command that pins each after
// checking: whoever made the token chose those addresses.
func (c *cli) reportUnverified(res *enroll.Result) {
	for _, u := range res.Unverified {
		why := oneLineError(u.Err)
		var other *enroll.InterceptionError
		if errors.As(u.Err, &other) {
			why = "another key, " + other.Got + ", answered there"
		}
		fmt.Fprintf(c.stdout, "Not verified: %s, which the token also lists, did not show key %s (%s); not pinned.\n",
			u.Addr, res.ServerFingerprint, termtext.Safe(why))
		fmt.Fprintf(c.stdout, "  If this server really answers there, check with its administrator, then pin it with: %s\n",
			c.command("trust-host", shellQuote(u.Addr), "--fingerprint", res.ServerFingerprint))
	}
}

// alreadyEnrolled recognizes a join run again after it succeeded: the
// token's server key is pinned here for the address, and the server let
// this client's key past enrollment — keytool proxy --enroll passes an
// authorized client's request on to its target, which answers something
// that is not keytool's (an HTTP 404, a banner): join's probe, before it
// sends the secret (enroll's probePath). Any other
// error is returned as it is.
func (c *cli) alreadyEnrolled(err error, tok enroll.Token, hosts *knownhosts.Store, id *tlsbridge.Identity) error {
	var ne *enroll.NotEnrollmentError
	if !errors.As(err, &ne) || ne.Timeout || hosts.Decide(ne.Addr, tok.Server).Verdict != knownhosts.Pinned {
		return err
	}
	answer := ne.Status
	if answer == "" {
		answer = oneLineError(ne.Err)
	}
	answer = termtext.Safe(answer) // the remote service's words
	return &alreadyEnrolledError{addr: ne.Addr, server: tok.ServerFingerprint(), client: id.Key.Fingerprint(),
		answer: answer, probe: ne.Probe, check: c.command("connect", shellQuote(ne.Addr))}
}

// alreadyEnrolledError: this client is enrolled with the token's server.
type alreadyEnrolledError struct {
	addr, server, client string
	answer               string // what the service behind the server answered
	probe                bool   // answered join's probe: the secret was not sent
	check                string // the command that shows it
}

func (e *alreadyEnrolledError) Error() string {
	if e.probe {
		return fmt.Sprintf("this client is already enrolled with %s: it presents key %s, pinned here, and lets this client's key %s through to its service, "+
			"which answered %s where keytool answers a client it does not know; the token's secret was not sent and nothing was written\nCheck with: %s", e.addr, e.server, e.client, e.answer, e.check)
	}
	return fmt.Sprintf("this client is already enrolled with %s: it presents key %s, pinned here, and lets this client's key %s through to its service, "+
		"which answered the enrollment request with %s; nothing was written\nCheck with: %s", e.addr, e.server, e.client, e.answer, e.check)
}

// oneLineError is err's message on one line.
func oneLineError(err error) string {
	return strings.Join(strings.Fields(fmt.Sprint(err)), " ")
}
