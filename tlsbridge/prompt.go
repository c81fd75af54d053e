package tlsbridge

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keytool/keytool/dane"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// UnknownHost is what a Prompt is asked about: an address whose key is not
// pinned, the key and certificate chain it presented and, when a CA
// verified it (ClientOptions.ConfirmCA), which one — the whole peer, as
// libvirt's certificate validator sees it. New fields may be added.
type UnknownHost struct {
	Addr string
	Key  *jwk.Key
	// Chain is the certificate chain the server presented, leaf first.
	Chain []*x509.Certificate
	// CA is how PKI mode verified the server — its chain to the CA, the
	// CA's file and purpose — under ClientOptions.ConfirmCA; nil when no
	// CA verified it (the key is simply not pinned). Its Chain is shared
	// with other decisions on the same chain (PKI.VerifyPurpose): read
	// it, do not modify it.
	CA *CAVerified
	// Purpose is the connection's purpose (ClientOptions.Purpose). A
	// Prompt that pins for several purposes at once may list them here,
	// joined by ", " (no purpose holds a comma: ValidCAName).
	Purpose string
	// OtherAddresses are the addresses (and patterns) for which the same
	// key is already pinned, as the HostKeys store reports them when it
	// can (knownhosts.Store.AddressesOf): a host known by another name,
	// or a key copied between hosts. Empty when there are none or the
	// store cannot tell.
	OtherAddresses []string
	// DNS is what DNS said about the key (ClientOptions.VerifyHostKeyDNS),
	// nil when it was not asked. Only a validated match (DNS.Proven) is
	// worth more than a note; under DNSYes it connects without a question.
	DNS *dane.Result
}

// Answer is a Prompt's decision.
type Answer int

const (
	No   Answer = iota // refuse the connection
	Yes                // pin the key for the address and connect
	Once               // connect this time only, pin nothing (libvirt's "allow one time")
)

// Prompt decides about an unknown host under the Ask policy. The Client
// asks one question at a time.
type Prompt interface {
	AskUnknownHost(h UnknownHost) (Answer, error)
}

// PromptFunc adapts a function to Prompt.
type PromptFunc func(UnknownHost) (Answer, error)

func (f PromptFunc) AskUnknownHost(h UnknownHost) (Answer, error) { return f(h) }

// NonInteractive refuses every unknown host, with a *NotPinnedError.
type NonInteractive struct{}

func (NonInteractive) AskUnknownHost(h UnknownHost) (Answer, error) {
	return No, &NotPinnedError{Addr: h.Addr, Key: h.Key}
}

// NotPinnedError means an unknown host was refused because nobody could be
// asked: pinning Key for Addr, once its fingerprint is checked, lets the
// next connection through.
type NotPinnedError struct {
	Addr string
	Key  *jwk.Key
}

func (e *NotPinnedError) Error() string {
	return fmt.Sprintf("tlsbridge: host %s is not trusted: no key is pinned for it, and there is no terminal to ask; it presented %s key %s",
		e.Addr, e.Key.Algorithm(), e.Key.Fingerprint())
}

// Unwrap is the *knownhosts.UnknownHostError the Strict policy returns
// for the same host, so that a caller asks errors.As once whatever the
// policy (found by review: "trust it?" code needed a case for each).
func (e *NotPinnedError) Unwrap() error {
	return &knownhosts.UnknownHostError{Addr: e.Addr, Key: e.Key, Fingerprint: e.Key.Fingerprint()}
}

// Terminal asks on a terminal, in OpenSSH's words: the address, the key
// type, the fingerprint and the key ID, then yes, no, once, or the
// fingerprint typed (or pasted) in full, which counts as yes when it
// matches. Only what is typed once the question is written answers it:
// what a terminal In holds unread before it is written is discarded
// (discardTypeahead).
type Terminal struct {
	In  io.Reader // the answers; nil: /dev/tty
	Out io.Writer // the question; nil: /dev/tty
	// NoOnce leaves "once" out of the question, for callers whose only
	// purpose is to pin: OpenSSH's exact question.
	NoOnce bool
	// Visual draws the key's randomart (jwk.Key.Randomart, over its SPKI
	// hash) under its fingerprint, as OpenSSH's VisualHostKey does.
	Visual bool
}

func (t Terminal) AskUnknownHost(h UnknownHost) (Answer, error) {
	in, out, done, err := t.streams()
	if err != nil {
		return NonInteractive{}.AskUnknownHost(h)
	}
	defer done()
	return t.answer(in, out, h.Key, !t.NoOnce, func() {
		t.describe(out, h)
		fmt.Fprint(out, "Are you sure you want to continue connecting ")
	})
}

// streams returns the terminal's input and output, opening /dev/tty for
// those not given; done closes it.
func (t Terminal) streams() (in io.Reader, out io.Writer, done func(), err error) {
	in, out, done = t.In, t.Out, func() {}
	if in == nil || out == nil {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return nil, nil, nil, err
		}
		if in == nil {
			in = tty
		}
		if out == nil {
			out = tty
		}
		done = func() { tty.Close() }
	}
	return in, out, done, nil
}

// answer writes the question (ask) and its choices, and reads the reply:
// yes, no, once (if offered), or the fingerprint of key, which counts as
// yes when it matches; the end of input is no. What a terminal in holds
// is discarded first (discardTypeahead), unread, before any of the
// question is written — as readpassphrase(3) flushes the terminal before
// it writes its prompt — so that nothing typed once the question is on
// the screen is lost: a reply typed at once after it used to be
// discarded when the machine was slow between the two.
func (t Terminal) answer(in io.Reader, out io.Writer, key *jwk.Key, once bool, ask func()) (Answer, error) {
	choices := "yes/no/[fingerprint]"
	retry := "Please type 'yes', 'no' or the fingerprint: "
	if once {
		choices = "yes/no/once/[fingerprint]"
		retry = "Please type 'yes', 'no', 'once' or the fingerprint: "
	}
	// Only what is typed once the question is on the screen answers it.
	if err := discardTypeahead(in); err != nil {
		return No, err
	}
	ask()
	fmt.Fprintf(out, "(%s)? ", choices)
	r := bufio.NewReader(in)
	for {
		line, err := r.ReadString('\n')
		reply := strings.TrimSpace(line)
		switch strings.ToLower(reply) {
		case "yes":
			return Yes, nil
		case "no":
			return No, nil
		case "once":
			if once {
				return Once, nil
			}
		}
		if fp, perr := jwk.ParseFingerprint(reply); perr == nil {
			if fp.Match(key) {
				return Yes, nil
			}
			fmt.Fprintf(out, "The fingerprint you typed does not match the host's key.\n")
			return No, nil
		}
		if err != nil {
			fmt.Fprintln(out)
			return No, nil // end of input: the safe answer
		}
		fmt.Fprint(out, retry)
	}
}

// AskAnnouncedKey asks whether to pin the next key a pinned host
// announces, showing both fingerprints (UpdateHostKeys ask).
func (t Terminal) AskAnnouncedKey(a AnnouncedKey) (Answer, error) {
	in, out, done, err := t.streams()
	if err != nil {
		return No, nil // nobody to ask: the key is not pinned
	}
	defer done()
	return t.answer(in, out, a.Next, false, func() {
		fmt.Fprintf(out, "Host '%s' proved it holds its pinned %s key %s\n", termtext.Safe(a.Addr), a.Current.Algorithm(), a.Current.Fingerprint())
		fmt.Fprintf(out, "and announces the key it will use next:\n")
		fmt.Fprintf(out, "%s key fingerprint is %s.\n", a.Next.Algorithm(), a.Next.Fingerprint())
		if t.Visual {
			fmt.Fprintf(out, "%s\n", a.Next.Randomart())
		}
		fmt.Fprintf(out, "Key ID: %s\n", a.Next.KeyID())
		fmt.Fprint(out, "Pin the next key too, beside the current one ")
	})
}

// AnnouncedKeyNotOffered says that the next key a pinned host announces
// is not asked about (UpdateAsk): its address holds pinned of most keys
// already, and a yes would be refused. It names the address and the
// keys, not where the pins are kept: they are this user's to list.
func (t Terminal) AnnouncedKeyNotOffered(a AnnouncedKey, pinned, most int) {
	_, out, done, err := t.streams()
	if err != nil {
		return // nobody to tell: the log says it
	}
	defer done()
	fmt.Fprintf(out, "Host '%s' proved it holds its pinned %s key %s\n", termtext.Safe(a.Addr), a.Current.Algorithm(), a.Current.Fingerprint())
	fmt.Fprintf(out, "and announces the key it will use next, %s key %s.\n", a.Next.Algorithm(), a.Next.Fingerprint())
	fmt.Fprintf(out, "It is not offered for pinning: %d keys are pinned for '%s' already, the most a host's announcements may bring it to (its key and %d next ones).\n",
		pinned, termtext.Safe(a.Addr), most-1)
	fmt.Fprintf(out, "Remove the keys pinned for '%s' that it no longer uses, and the next connection asks again.\n", termtext.Safe(a.Addr))
}

// describe writes what the question is about, in OpenSSH's words: the
// address (termtext.Safe: the caller's, perhaps a redirect's, whose bidi
// override would show another host), the key and, when the key is pinned for other addresses, those
// (one per line, indented, as ssh lists them).
func (t Terminal) describe(out io.Writer, h UnknownHost) {
	if h.CA != nil {
		fmt.Fprintf(out, "The certificate of host '%s' was verified by the CA '%s' (%s).\n",
			termtext.Safe(h.Addr), termtext.Safe(h.CA.CA().Subject.String()), termtext.Safe(h.CA.File))
	} else {
		fmt.Fprintf(out, "The authenticity of host '%s' can't be established.\n", termtext.Safe(h.Addr))
	}
	fmt.Fprintf(out, "%s key fingerprint is %s.\n", h.Key.Algorithm(), h.Key.Fingerprint())
	if t.Visual {
		fmt.Fprintf(out, "%s\n", h.Key.Randomart())
	}
	fmt.Fprintf(out, "Key ID: %s\n", h.Key.KeyID())
	if line := DNSLine(h.DNS); line != "" {
		fmt.Fprintln(out, line)
	}
	switch {
	case strings.Contains(h.Purpose, ","):
		fmt.Fprintf(out, "Connection purposes: %s (yes pins the key for these purposes only).\n", termtext.Safe(h.Purpose))
	case h.Purpose != "":
		fmt.Fprintf(out, "Connection purpose: %s (yes pins the key for this purpose only).\n", termtext.Safe(h.Purpose))
	}
	if len(h.OtherAddresses) == 0 {
		fmt.Fprintf(out, "This key is not known by any other names.\n")
		return
	}
	fmt.Fprintf(out, "The %s host key for %s is known by the following other names/addresses:\n", h.Key.Algorithm(), termtext.Safe(h.Addr))
	for _, a := range h.OtherAddresses {
		fmt.Fprintf(out, "    %s\n", termtext.Safe(a))
	}
}

// DNSLine is what a prompt says of a DNS result, in one line: OpenSSH's
// words for a validated match and for no record ("No matching host key
// fingerprint found in DNS."), which it completes with the note when
// records were ignored; "" when DNS was not asked.
func DNSLine(r *dane.Result) string {
	if r == nil {
		return ""
	}
	switch {
	case r.Proven():
		return "Matching host key fingerprint found in DNS."
	case r.Status == dane.Match:
		return "A matching host key fingerprint was found in DNS, but the answer is not DNSSEC-validated: it proves nothing."
	case r.Status == dane.NoMatch:
		return "WARNING: the host key fingerprint published in DNS is not this key's (" + termtext.Safe(r.Note()) + ")."
	case r.Status == dane.Failed:
		return "Nothing was learned from DNS: " + termtext.Safe(r.Note()) + "."
	case len(r.Ignored) > 0:
		return "No matching host key fingerprint found in DNS: " + termtext.Safe(r.Note()) + "."
	}
	return "No matching host key fingerprint found in DNS."
}
