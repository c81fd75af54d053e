package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/keytool/keytool/enroll"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// adviseEnroll returns the advice for the errors of package enroll
// (joining and inviting), or "". Commands the user runs here carry the -H
// and -i the user ran; commands for the server's administrator are
// spelled plainly, with "on the server".
func (c *cli) adviseEnroll(err error) string {
	var (
		tokErr      *enroll.TokenError
		tokExpired  *enroll.TokenExpiredError
		intercepted *enroll.InterceptionError
		unreachable *enroll.UnreachableError
		handshake   *enroll.HandshakeRefusedError
		notEnroll   *enroll.NotEnrollmentError
		refused     *enroll.RefusedError
		mismatch    *enroll.KeyMismatchError
		pin         *enroll.PinError
		nameTaken   *enroll.NameTakenError
		exists      *enroll.InviteExistsError
		notPending  *enroll.NotPendingError
		tokenFile   *tokenFileError
	)
	switch {
	case errors.As(err, &tokenFile):
		inv := c.command("invite", "…")
		if tokenFile.owner >= 0 {
			return fmt.Sprintf("Remove the file and make it again yourself, with umask 077: (umask 077 && %s > FILE); or keep the token in a variable: TOKEN=$(%s)", inv, inv)
		}
		return fmt.Sprintf("Make the file with umask 077: (umask 077 && %s > FILE), or chmod 600 it first; or keep the token in a variable: TOKEN=$(%s)", inv, inv)
	case errors.As(err, &tokErr):
		switch {
		case errors.Is(err, enroll.ErrTokenMangled):
			return "Copy it again, whole, from the output of keytool invite."
		case errors.Is(err, enroll.ErrNotToken):
			return fmt.Sprintf("A token starts with %q and is printed by keytool invite.", enroll.TokenPrefix)
		case errors.Is(err, enroll.ErrTokenVersion):
			return fmt.Sprintf("This keytool reads %q tokens: use the same keytool version on both sides.", enroll.TokenPrefix)
		case errors.Is(err, enroll.ErrTokenName):
			return "It was made for a name this keytool no longer accepts (the rule for names grew stricter): ask the server's administrator for an invitation under another name: keytool invite --name NAME (on the server)."
		}
		return "It was not made by keytool invite."
	case errors.As(err, &tokExpired):
		return "Ask the server's administrator for a new one: " + inviteAgain(tokExpired.Name, tokExpired.Addresses...) + " (on the server)."
	case errors.As(err, &intercepted):
		return "Either the token is for another server (or an old key of this one), or someone is intercepting the connection (a man-in-the-middle attack).\n" +
			"Check the server's fingerprint with its administrator (keytool show, on the server)."
	case errors.As(err, &unreachable):
		return "Check that the server is up, serves enrollment (keytool proxy --enroll) and that this machine can reach it."
	case errors.As(err, &handshake):
		return "The server does not serve enrollment (it must run keytool proxy --enroll, or mount the enrollment handler), or this client's key is revoked there."
	case errors.As(err, &notEnroll):
		if notEnroll.Timeout {
			return ""
		}
		// The answer was cut short, or was not an enrollment answer.
		return fmt.Sprintf("If the server is keytool proxy --enroll, this client's key may be authorized there already, so the proxy passed the request on to its target. Check with:\n"+
			"  %s\n"+
			"and pin the server's key, if it is not pinned yet, with:\n"+
			"  %s",
			c.command("connect", shellQuote(notEnroll.Addr)),
			c.command("trust-host", shellQuote(notEnroll.Addr), "--fingerprint", notEnroll.ServerFingerprint))
	case errors.As(err, &refused):
		return c.refusedAdvice(refused)
	case errors.As(err, &mismatch):
		return "Ask the server's administrator to check: keytool authorize --list (on the server)."
	case errors.As(err, &pin):
		return "Pin it with:\n  " + c.command("trust-host", shellQuote(pin.Addr), "--fingerprint", pin.Fingerprint)
	case errors.As(err, &nameTaken):
		return "Choose another --name, or remove it first: " + c.command("authorize", "--remove", shellQuote(nameTaken.Name))
	case errors.As(err, &exists):
		return "Choose another name, or remove it first: " + c.command("invite", "--remove", shellQuote(exists.Name))
	case errors.As(err, &notPending) && notPending.InUse:
		return "See whether that client was enrolled with: " + c.command("authorize", "--list") +
			"\nTo undo it, remove the key: " + c.command("authorize", "--remove", shellQuote(notPending.Name))
	case errors.As(err, &notPending) && !notPending.Used.IsZero():
		return "To undo that, remove the key: " + c.command("authorize", "--remove", shellQuote(notPending.Name))
	case errors.As(err, &notPending):
		return "List them with: " + c.command("invite", "--list")
	}
	return ""
}

// inviteAgain is the command that makes a new invitation for name
// ("NAME" if empty) at addrs: invite needs --address, and the address a
// client dialled is the one it joins at (review: without it the command
// printed was bad usage). It runs on the server, whose -H the client
// cannot know.
func inviteAgain(name string, addrs ...string) string {
	cmd := "keytool invite --name NAME"
	if name != "" {
		cmd = "keytool invite --name " + shellQuote(name)
	}
	for _, a := range addrs {
		if a != "" {
			cmd += " --address " + shellQuote(a)
		}
	}
	return cmd
}

// refusedAdvice is what to do when the server refused an enrollment.
func (c *cli) refusedAdvice(e *enroll.RefusedError) string {
	name := "NAME"
	if e.Name != "" {
		name = shellQuote(e.Name)
	}
	invite := inviteAgain(e.Name, e.Addr)
	switch e.Reason {
	case enroll.ReasonExpired:
		// The refusal asks for a new token already: the advice gives its
		// administrator's command, rather than asking twice.
		return "A new token is made on the server with: " + invite
	case enroll.ReasonAlreadyUsed:
		// Used, or claimed: by a client now, or by a server that stopped
		// while enrolling one, which left the invitation pending (invite
		// --name would say it exists) and blocked until it is removed.
		return "A new token is made on the server with: " + invite + "\n" +
			"If the invitation is still being used, or a server stopped while using it (that command says it exists), the administrator removes it first: keytool invite --remove " + name +
			", checks keytool authorize --list (whether a client was enrolled with it), then invites again."
	case enroll.ReasonUnknown:
		return "Ask the server's administrator for a new token: " + invite + " (on the server)."
	case enroll.ReasonWrongSecret:
		return "Copy the token again, whole, from the output of keytool invite, or ask for a new one."
	case enroll.ReasonNotEnrollable:
		return "On the server, keytool authorize --list shows the authorized keys; a name held by another key is freed with: keytool authorize --remove " + name
	}
	return ""
}

// adviseTLS returns the advice for the errors of package tlsbridge
// (connections, PKI mode, prompts), or "".
func (c *cli) adviseTLS(err error) string {
	var forbidden *forbiddenByServerError
	if errors.As(err, &forbidden) {
		return c.forbiddenAdvice(forbidden)
	}
	var notPinned *tlsbridge.NotPinnedError
	if errors.As(err, &notPinned) {
		// The question a terminal would have asked names the other
		// addresses the key is pinned for (OpenSSH's "known by the
		// following other names"); without one, the advice does.
		known := ""
		if others := knownhosts.Load(knownhosts.HomeOptions(c.home)).AddressesOf(notPinned.Key.SPKIHash()); len(others) > 0 {
			known = fmt.Sprintf("This key is already pinned here for %s (the same host under another name or port, or a key copied between hosts).\n",
				strings.Join(others, ", "))
		}
		return fmt.Sprintf("%sAfter checking that fingerprint with the host's administrator, pin it with:\n  %s",
			known, c.pinCommand(notPinned.Addr, "--fingerprint", notPinned.Key.Fingerprint()))
	}
	var (
		noSuchCA *tlsbridge.NoSuchCAError
		caExists *tlsbridge.CAExistsError
		notCA    *tlsbridge.NotCAError
		dnsOther *tlsbridge.DNSMismatchError
	)
	switch {
	case errors.As(err, &dnsOther):
		return fmt.Sprintf("Either the host has a new key and its DNS records are out of date, or someone is intercepting the connection. "+
			"Check the key with the host's administrator (and its records with: keytool dns-record); once they agree, pin it with:\n  %s",
			c.pinCommand(dnsOther.Addr, "--fingerprint", dnsOther.Fingerprint))
	case errors.As(err, &noSuchCA):
		return "List the installed CAs with: " + c.command("ca", "list")
	case errors.As(err, &caExists):
		return "Give it another name (--name NAME), or remove the installed one first: " + c.command("ca", "list")
	case errors.As(err, &notCA):
		return "To trust a server's or client's own certificate, pin its key instead: " + c.command("trust-host", "ADDR", "--fingerprint", "FINGERPRINT") +
			" or " + c.command("authorize", "FILE")
	}
	return ""
}
