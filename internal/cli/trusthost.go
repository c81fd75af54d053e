package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// trustHostCommand makes the trusthost command, with flag variables of its own.
func trustHostCommand() *command {
	var (
		keyFile     string
		fingerprint string
		yes         bool
		visual      bool
		list        bool
		lf          listFlags
		remove      []string
		add         bool
		purposes    []string
	)
	return &command{
		name:       "trust-host",
		uses:       globalHome | globalIdentity | globalStore,
		storeEdits: true,
		args:       "ADDR [--add] [--purpose P] [--key FILE | --fingerprint FP | --yes]  ·  --list [--json|--long|--full] | --remove ADDR [--fingerprint FP] | --remove ADDR|FINGERPRINT...",
		summary:    "pin the key a server must present at an address (trusted_hosts.d)",
		help: `Without --key, connects to ADDR (host:port) over TLS, shows the server's key
the OpenSSH way and asks whether to trust it: yes, no, or the fingerprint
typed or pasted (which counts as yes when it matches). The answer yes saves
HOME/trusted_hosts.d/HOST_PORT.json with the address.

  --fingerprint FP  do not ask: pin only if the server's key matches FP (any
                    form: SHA256:…, key ID, sha256//…, hex); else exit 1,
                    nothing saved
  --key FILE        pin the key in FILE for ADDR without connecting (ADDR
                    may then be a pattern: *.example.com, host without port)
  --yes             pin whatever key the server presents: trust on first use
  --visual-host-key draw the key's randomart in the question (OpenSSH's
                    VisualHostKey)

The answer no refuses, as ssh does: "Host key verification failed.", exit 1.

` + hostDNSHelp("Host keys in DNS", ",\n                    and is pinned with a comment saying so") + `
If ADDR is already pinned to another key, trust-host prints the changed-key
message and changes nothing: remove the old pin first, or, when the host
announced an additional key (a key rollover), pin it beside the old one:

  --add             with --key or --fingerprint: pin the key as one more key
                    of ADDR, keeping its pins, in HOST_PORT+KEYID.json; both
                    keys are admitted until one is removed. Check the new
                    key with the host's administrator first

A pin may be for some purposes only (XAPI's pinned certificates by
purpose): it is then used only by connections of those purposes (keytool
connect --purpose, proxy --purpose, the Go API's Purpose), and another
key's pin for other purposes is no changed key to it; a pin without a
purpose serves every purpose. A connection without a purpose is admitted
only by a pin for every purpose (trust-host ADDR without --purpose).

  --purpose P       pin the key for connections of purpose P only (repeat,
                    or P1,P2, for several; a purpose is letters, digits,
                    '.', '_' and '-', as for keytool ca add --purpose). The
                    question says so; the pin's file gets a "purpose"
                    member. With --key, replaces the purposes of FILE

Without --purpose, --key FILE keeps the "purpose" member of FILE — a list,
or a PEM header "purpose: ldap, pool". A key pinned for ADDR for other
purposes is pinned again beside it (HOST_PORT+KEYID+PURPOSE.json), not
"already trusted".

--remove ADDR unpins every key of ADDR, whatever its purposes (as ssh-keygen
-R does: the address is what was checked); --remove ADDR --fingerprint FP
only that key's pins for ADDR; --remove FINGERPRINT the key everywhere.
Repeat --remove for several (not with --fingerprint): each is unpinned in
turn, on one check of the files for all of them, and one not found (or
failing) is said and the next unpinned all the same (exit 1; with
--store, where a command that fails writes nothing, none is).

--list prints ADDRESS, FINGERPRINT (short), STATUS (ok, revoked, or refused
when a revocation list cannot be read), PURPOSE (only when a pin has one:
its purposes, or any) and COMMENT of every pin, in 80 columns; -l/--long
adds FILE, --full the whole fingerprints (--json: an array of objects with
addresses, fingerprint, key_id, comment, purposes, status and file).` + storeEditHelp,
		flags: func(set *pflag.FlagSet, c *cli) {
			c.hostDNS.register(set)
			c.registerUpdateHostKeys(set)
			set.StringVar(&keyFile, "key", "", "pin the key in `FILE` without connecting")
			set.StringVar(&fingerprint, "fingerprint", "", "pin only if the server's key matches `FP`")
			set.BoolVar(&yes, "yes", false, "pin whatever key the server presents (trust on first use)")
			set.BoolVar(&visual, "visual-host-key", false, "draw the server key's randomart in the question")
			set.BoolVar(&list, "list", false, "list the pinned hosts")
			lf.register(set, "with --list: ")
			set.StringArrayVar(&remove, "remove", nil, "unpin `ADDR` (with --fingerprint: only that key) or the key with FINGERPRINT (repeat for several)")
			set.BoolVar(&add, "add", false, "pin one more key for ADDR, keeping its pins (with --key or --fingerprint)")
			set.StringSliceVar(&purposes, "purpose", nil, "pin the key for connections of `PURPOSE` only (repeat or comma-separate for several)")
		},
		run: func(c *cli, args []string) error {
			modes := 0
			for _, set := range []bool{keyFile != "", fingerprint != "", yes} {
				if set {
					modes++
				}
			}
			// --remove ADDR --fingerprint FP unpins one key of ADDR.
			unpinOne := len(remove) > 0 && fingerprint != ""
			others := len(args) > 0 || modes > 0 || add || purposes != nil
			if unpinOne {
				others = len(args) > 0 || modes > 1 || add || purposes != nil
				if len(remove) > 1 && !list {
					return usagef("--fingerprint FP unpins one key of one --remove ADDR; give one --remove")
				}
			}
			if done, err := listOrRemove(list, lf, len(remove) > 0, others, c.listHosts, func() error {
				if unpinOne {
					return c.unpinKeyOf(remove[0], fingerprint)
				}
				return c.unpinHosts(remove)
			}); done {
				return err
			}
			if err := c.checkPinUsage(args, keyFile, fingerprint, modes, add); err != nil {
				return err
			}
			mode := knownhosts.AddNew
			if add {
				mode = knownhosts.AddAnother
			}
			if _, err := knownhosts.NormalizeAddr(args[0]); err != nil {
				return &usageError{err.Error()} // a malformed ADDR is bad usage, like a bad --name
			}
			purposes, err := checkPurposes(purposes)
			if err != nil {
				return err
			}
			c.pinPurposes = purposes // the advice's commands pin for these too
			if keyFile != "" {
				err = c.pinKeyFile(args[0], keyFile, mode, purposes)
			} else {
				err = c.pinServerKey(args[0], pinRequest{want: fingerprint, yes: yes, visual: visual, mode: mode, purposes: purposes})
			}
			if changed := (*knownhosts.KeyChangedError)(nil); errors.As(err, &changed) && keyFile != "" {
				return &repinError{err: err, keyFile: keyFile}
			}
			return err
		},
	}
}

// checkPinUsage refuses the arguments of a pin (trust-host ADDR …) that
// do not make one: modes is how many of --key, --fingerprint and --yes
// were given.
func (c *cli) checkPinUsage(args []string, keyFile, fingerprint string, modes int, add bool) error {
	switch {
	case len(args) == 2 && keyFile == "" && isFile(args[1]):
		// authorize takes its FILE so; trust-host takes it with --key.
		return usagef("trust-host takes one ADDR; to pin the key in a file: %s", c.command("trust-host", shellQuote(args[0]), "--key", shellQuote(args[1])))
	case len(args) == 2 && keyFile == "" && isFile(args[0]):
		// The same, in the other order (FILE ADDR).
		return usagef("trust-host takes one ADDR; to pin the key in a file: %s", c.command("trust-host", shellQuote(args[1]), "--key", shellQuote(args[0])))
	case len(args) != 1:
		return usagef("trust-host needs one ADDR (host:port)")
	case modes > 1:
		return usagef("use at most one of --key, --fingerprint and --yes")
	case fingerprint != "" && c.hostDNS.inUse():
		return usagef("--fingerprint checks the key itself: --verify-host-key-dns has no use with it")
	case keyFile != "" && c.hostDNS.inUse():
		return usagef("--key pins without connecting: --verify-host-key-dns has no use with it")
	case add && keyFile == "" && fingerprint == "":
		return usagef("--add pins a key you have checked: give it with --key FILE or --fingerprint FP")
	}
	return nil
}

// repinError is a changed key met by trust-host --key FILE: the advice's
// commands pin with --key FILE too, as --fingerprint would connect, which
// a pattern, or a host out of reach, cannot.
type repinError struct {
	err     error
	keyFile string
}

func (e *repinError) Error() string { return e.err.Error() }
func (e *repinError) Unwrap() error { return e.err }

// checkPurposes checks the purposes given with --purpose (nil: none given)
// by the one rule of purposes (home.ValidName, as ca add's and a pin
// file's), without repeats.
func checkPurposes(purposes []string) ([]string, error) {
	var out []string
	for _, p := range purposes {
		if err := checkPurpose(p); err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// checkPurpose checks one --purpose.
func checkPurpose(p string) error {
	if !home.ValidName(p) {
		return usagef("--purpose %q: a purpose is %s", p, home.NameRule)
	}
	return nil
}

// checkConnectionPurpose checks the --purpose of a connection (connect,
// proxy): none, or one purpose.
func checkConnectionPurpose(p string) error {
	if p == "" {
		return nil
	}
	return checkPurpose(p)
}

// withPurposes is k (public) pinned for purposes only; none: k as it is.
func withPurposes(k *jwk.Key, purposes []string) *jwk.Key {
	if len(purposes) == 0 {
		return k
	}
	k = k.PublicKey()
	if k.Attrs == nil {
		k.Attrs = jwk.Attributes{}
	}
	k.Attrs.SetList(jwk.AttrPurpose, purposes)
	return k
}

// pinKeyFile pins the key of a file for addr, without connecting, for
// purposes (none: the file's "purpose" member, if any).
func (c *cli) pinKeyFile(addr, file string, mode knownhosts.AddMode, purposes []string) error {
	keys, err := c.readKeys(file)
	if err != nil {
		return err
	}
	if len(keys) != 1 {
		return fmt.Errorf("%s holds %d keys; trust-host --key pins one: split the file, or copy the host's key into trusted_hosts.d with its \"address\" attribute", file, len(keys))
	}
	c.warnPrivate("trust-host", sourceName(file), keys[0], "ask the host's administrator for `keytool pub` output instead")
	if err := c.homeToWrite(); err != nil { // the key checked first, the home before any store opens in it
		return err
	}
	hosts, finish := c.adminHostStore(knownhosts.Lookups{Keys: [][32]byte{keys[0].SPKIHash()}, Addrs: []string{addr}})
	defer finish()
	return c.pin(hosts, addr, withPurposes(keys[0].PublicHalf(), purposes), mode)
}

func (c *cli) pin(hosts *knownhosts.Store, addr string, k *jwk.Key, mode knownhosts.AddMode) error {
	before := pinFiles(hosts)
	file, err := hosts.AddKey(addr, k, mode)
	if err != nil {
		return err
	}
	if before[file] {
		fmt.Fprintf(c.stdout, "%s is already trusted: %s, pinned in %s\n", addr, keyPhrase(k), termtext.Safe(file))
		return nil
	}
	fmt.Fprintf(c.stdout, "Pinned %s for %s in %s\n", keyPhrase(k), addr, termtext.Safe(file))
	ps, _ := k.Attrs.List(jwk.AttrPurpose) // read back by the store: valid
	c.sayPurposes(ps)
	return nil
}

// pinFiles is the set of the files holding pins.
func pinFiles(hosts *knownhosts.Store) map[string]bool {
	files := map[string]bool{}
	for _, e := range hosts.Entries() {
		files[e.File] = true
	}
	return files
}

// sayPurposes says which connections a new pin is for, when it is for
// some purposes only.
func (c *cli) sayPurposes(purposes []string) {
	if len(purposes) > 0 {
		fmt.Fprintf(c.stdout, "For connections of purpose %s only.\n", printable(strings.Join(purposes, ", ")))
	}
}

// seenHosts is the trusted-hosts store as the client sees it, noting the
// key the server presented and the file a new pin went to, so that
// trust-host can say what happened.
type seenHosts struct {
	*knownhosts.Store
	mode     knownhosts.AddMode // AddAnother: trust-host --add
	purposes []string           // trust-host --purpose: the new pin's
	sum      [32]byte
	seen     bool
	file     string
	comment  string // the new pin's comment: tlsbridge.DNSComment… when DNS let it in
}

func (h *seenHosts) Decide(addr string, sum [32]byte) knownhosts.Decision {
	if !h.seen {
		// The first decision is on the key the server presented; later
		// ones may be on the keys it announces (UpdateHostKeys).
		h.sum, h.seen = sum, true
	}
	h.Store.Extend(knownhosts.Lookups{Keys: [][32]byte{sum}}) // whether it is revoked, pinned elsewhere
	d := h.decide(addr, sum)
	var only *knownhosts.PurposesOnlyError
	if errors.As(d.Err, &only) {
		// trust-host without --purpose pins for every purpose a key the
		// address pins for some only, once the user has checked it — but
		// where it pins other keys too, a pin for every purpose would be a
		// changed key (knownhosts.Store.AddKey): said before the question,
		// not after the answer. Under --add it is pinned beside them, as
		// AddKey with AddAnother does (the changed-key advice's command).
		if len(only.Others) > 0 && h.mode != knownhosts.AddAnother {
			return knownhosts.Decision{Verdict: knownhosts.Changed, Err: &knownhosts.KeyChangedError{Addr: addr, Fingerprint: only.Fingerprint, Want: only.Others}}
		}
		return knownhosts.Decision{Verdict: knownhosts.Unknown, Err: &knownhosts.UnknownHostError{Addr: addr, Fingerprint: only.Fingerprint}}
	}
	if d.Verdict == knownhosts.PinnedIfNamed {
		// trust-host pins an address: a key pinned without one does not
		// pin this address, and its certificate's names do not matter
		// here — the user checks the key.
		return knownhosts.Decision{Verdict: knownhosts.Unknown, Err: &knownhosts.UnknownHostError{Addr: addr, Fingerprint: jwk.FormatFingerprint(sum)}}
	}
	return d
}

// decide is the store's decision on the key for the pin asked for: with
// purposes, the key is pinned when a pin serves each of them; a final
// refusal for any of them (a changed key for it, a revocation, skipped
// files) stands, whichever purpose it is for and in whatever order they
// were given — a key that is changed for one purpose is never asked
// about as unknown because another purpose, given first, has no pin;
// otherwise the first purpose's other decision (unknown) stands. The
// pins for other purposes are not there (knownhosts.Store.DecidePurpose).
func (h *seenHosts) decide(addr string, sum [32]byte) knownhosts.Decision {
	if h.mode == knownhosts.AddAnother {
		return h.Store.DecideAnother(addr, sum)
	}
	if len(h.purposes) == 0 {
		return h.Store.Decide(addr, sum)
	}
	var (
		d, open knownhosts.Decision // open: the first decision that is not final
		opened  bool
	)
	for _, p := range h.purposes {
		switch d = h.Store.DecidePurpose(addr, p, sum); d.Verdict {
		case knownhosts.Pinned:
		case knownhosts.Unknown, knownhosts.PinnedIfNamed:
			if !opened {
				open, opened = d, true
			}
		default:
			return d
		}
	}
	if opened {
		return open
	}
	return d
}

func (h *seenHosts) Add(addr string, k *jwk.Key) (string, error) {
	k = withPurposes(k, h.purposes)
	file, err := h.Store.AddKey(addr, k, h.mode)
	h.file, h.comment = file, k.Attrs.Comment()
	return file, err
}

// mismatchError means the server's key is not the one the user expected.
type mismatchError struct {
	addr, want string
	got        *jwk.Key
}

func (e *mismatchError) Error() string {
	return fmt.Sprintf("the key of %s is %s (key ID %s), not %s: nothing saved.\n"+
		"Either the fingerprint was mistyped, or this is not the server you expect (or someone is intercepting the connection).",
		e.addr, e.got.Fingerprint(), e.got.KeyID(), e.want)
}

// pinRequest is what trust-host ADDR asks for, without --key.
type pinRequest struct {
	want     string             // --fingerprint: pin only this key
	yes      bool               // --yes: pin whatever key
	visual   bool               // --visual-host-key
	mode     knownhosts.AddMode // AddAnother: --add, beside the address's pins
	purposes []string           // --purpose: pin for these only
}

// purposeTerminal is the terminal's question naming the purposes the key
// is to be pinned for; its other questions (an announced key's) are the
// Terminal's.
type purposeTerminal struct {
	tlsbridge.Terminal
	purposes []string
}

func (t purposeTerminal) AskUnknownHost(h tlsbridge.UnknownHost) (tlsbridge.Answer, error) {
	h.Purpose = strings.Join(t.purposes, ", ")
	return t.Terminal.AskUnknownHost(h)
}

// pinServerKey connects to addr and pins its key: if it matches r.want,
// or (r.yes) whatever it is, or as the user answers on the terminal (with
// the key's randomart when r.visual), with r.mode, for r.purposes.
func (c *cli) pinServerKey(addr string, r pinRequest) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("%q: trust-host connects to host:port (use --key FILE to pin a pattern without connecting)", addr)
	}
	id, err := c.loadIdentity()
	if err != nil {
		return err
	}
	if err := c.homeToWrite(); err != nil { // the pin goes in the home
		return err
	}
	store, finish := c.adminHostStore(knownhosts.Lookups{Addrs: []string{addr}})
	defer finish()
	hosts := &seenHosts{Store: store, mode: r.mode, purposes: r.purposes}
	// trust-host says what it did itself; with DNS, its failures are
	// warned about on standard error as connect logs them.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if c.hostDNS.verify != "no" || c.updateHostKeys != "no" {
		// (and a next key the host announces, pinned or not)
		log = slog.New(notPinLog{slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})})
	}
	// The client has no Purpose: which pins count is seenHosts' to decide
	// for every purpose asked, and the question names them all.
	prompt := purposeTerminal{Terminal: tlsbridge.Terminal{NoOnce: true, Visual: r.visual}, purposes: r.purposes}
	opts := tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Ask, Prompt: prompt, Logger: log, PinFromDNS: true}
	if err := c.hostDNS.options(&opts); err != nil {
		return err
	}
	if err := c.updateHostKeysOptions(&opts); err != nil {
		return err
	}
	switch {
	case r.want != "":
		fp, err := jwk.ParseFingerprint(r.want)
		if err != nil {
			// A table's fingerprint (the server's keytool list) is cut
			// short; the key to pin is not in this home's lists, so the
			// hint is the server's command that prints it whole.
			if cutShort(r.want) {
				return &usageError{fmt.Sprintf("--fingerprint: %q is cut short, as tables print fingerprints; the server prints its key's whole with: keytool show (on the server)", r.want)}
			}
			return &usageError{"--fingerprint: " + err.Error()}
		}
		opts.Prompt = tlsbridge.PromptFunc(func(h tlsbridge.UnknownHost) (tlsbridge.Answer, error) {
			if fp.Match(h.Key) {
				return tlsbridge.Yes, nil
			}
			return tlsbridge.No, &mismatchError{addr: addr, want: r.want, got: h.Key}
		})
	case r.yes:
		opts.Policy = tlsbridge.AcceptNew
	}
	client, err := tlsbridge.NewClient(id, opts)
	if err != nil {
		return err
	}
	const dialTimeout = 2 * time.Minute // time for a human to answer
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	conn, err := client.DialContext(ctx, "tcp", addr)
	if err != nil && !hosts.seen {
		// No key came: a port that is not TLS, or that closed, is said
		// as connect says it, not as crypto/tls's words.
		err = handshakeFailure(err, addr, dialTimeout)
	}
	var presented *jwk.Key // the server's key, to name it in what trust-host says
	if conn != nil {
		if cs := conn.ConnectionState(); len(cs.PeerCertificates) > 0 {
			presented, _ = jwk.NewPublicKey(cs.PeerCertificates[0].PublicKey)
		}
		conn.Close()
	}
	switch {
	case refusedByUser(err):
		fmt.Fprintln(c.stderr, hostKeyFailed) // the user said no
		return &exitError{1}
	case err != nil && !(hosts.seen && tlsbridge.IsRemoteAlert(err)):
		// A server that refuses our key (a TLS 1.2 alert after we checked
		// its key) does not prevent pinning it.
		return err
	case !hosts.seen:
		return fmt.Errorf("%s presented no certificate", addr)
	}
	c.sayPinned(addr, r, hosts, presented)
	if err != nil {
		fmt.Fprintf(c.stderr, "Note: %s does not authorize this client's key %s yet; its administrator can run: keytool authorize --name NAME FILE (your public key: keytool%s pub)\n", addr, id.Key.Fingerprint(), c.homeFlag())
	}
	return nil
}

// sayPinned says what trust-host did with the key the server presented:
// pinned it (where, and for which purposes), or found it trusted already.
// presented is the key from the connection, nil when the handshake did
// not complete (the pin file then tells its type).
func (c *cli) sayPinned(addr string, r pinRequest, hosts *seenHosts, presented *jwk.Key) {
	fp := jwk.FormatFingerprint(hosts.sum)
	key := "key " + fp
	if presented != nil && presented.SPKIHash() == hosts.sum {
		key = keyPhrase(presented)
	}
	if hosts.file == "" {
		fmt.Fprintf(c.stdout, "%s is already trusted: %s\n", addr, key)
		return
	}
	if r.yes {
		fmt.Fprintf(c.stderr, "Warning: trusting %s's key on first use, without checking it; compare %s with the key its administrator sees (keytool show).\n", addr, fp)
	}
	if presented == nil {
		key = pinnedKeyPhrase(hosts.file, fp)
	}
	if strings.HasPrefix(hosts.comment, tlsbridge.DNSComment) {
		fmt.Fprintf(c.stdout, "Pinned %s for %s in %s (%s)\n", key, addr, termtext.Safe(hosts.file), termtext.Safe(hosts.comment))
	} else {
		fmt.Fprintf(c.stdout, "Pinned %s for %s in %s\n", key, addr, termtext.Safe(hosts.file))
	}
	c.sayPurposes(r.purposes)
}

// hostKeyFailed is what ssh says when the user refuses a host key.
const hostKeyFailed = "Host key verification failed."

// refusedByUser reports whether err is the answer no to the first-use
// question (a typed fingerprint that does not match counts as no).
func refusedByUser(err error) bool {
	var refused *tlsbridge.RefusedHostError
	return errors.As(err, &refused)
}

// anyNamedAddress is how lists show a key pinned without an address
// (knownhosts.Entry.AnyNamedAddress).
const anyNamedAddress = "any address the certificate names"

// pinnedFor says where a pinned key is trusted: its addresses, or
// anyNamedAddress.
func pinnedFor(e *knownhosts.Entry) string {
	if e.AnyNamedAddress() {
		return anyNamedAddress
	}
	return strings.Join(e.Addresses, ",")
}

// hostInfo is one pinned key in trust-host --list --json.
type hostInfo struct {
	Addresses []string `json:"addresses"`
	// AnyNamedAddress: pinned without an address, trusted at any address
	// its certificate names (Addresses is empty).
	AnyNamedAddress bool   `json:"any_named_address,omitempty"`
	Fingerprint     string `json:"fingerprint"`
	KeyID           string `json:"key_id"`
	Comment         string `json:"comment,omitempty"`
	// Purposes: the pin is for connections of these purposes only (its
	// "purpose" member); absent: every purpose.
	Purposes []string `json:"purposes,omitempty"`
	Status   string   `json:"status"` // ok, revoked, refused
	File     string   `json:"file"`
}

// hostStatus is what the store decides for the pin's key at its first
// exact address (a pattern is no address to ask about: there the store
// can only say whether the key is revoked).
func hostStatus(hosts *knownhosts.Store, e *knownhosts.Entry) string {
	addr := ""
	for _, a := range e.Addresses {
		if !strings.ContainsAny(a, "*?!") {
			addr = a
			break
		}
	}
	d := decideForPin(hosts, addr, e)
	var re *knownhosts.RevokedError
	switch {
	case d.Verdict == knownhosts.Revoked && errors.As(d.Err, &re) && re.Err != nil:
		return "refused" // a revocation input cannot be read: every key is
	case d.Verdict == knownhosts.Pinned, addr == "" && d.Verdict != knownhosts.Revoked:
		return "ok"
	}
	return d.Verdict.String()
}

// decideForPin is the store's decision on the key of pin e at addr for a
// connection e serves: of its first purpose, if it has any — a
// connection without a purpose is not admitted by a pin for some
// (docs/design.md, "Purposes"), which still admits its key for them.
func decideForPin(hosts *knownhosts.Store, addr string, e *knownhosts.Entry) knownhosts.Decision {
	if len(e.Purposes) > 0 {
		return hosts.DecidePurpose(addr, e.Purposes[0], e.SPKIHash)
	}
	return hosts.Decide(addr, e.SPKIHash)
}

// hostsTable is the listing of the pinned hosts, for trust-host --list and
// keytool list. The PURPOSE column is there only when a pin is for some
// purposes: most homes have none, and a column of "any" would be noise.
func hostsTable(hosts *knownhosts.Store, lf listFlags, file func(string) string) (jsonSeq[hostInfo], *table) {
	entries := hosts.Entries()
	purposes := slices.ContainsFunc(entries, func(e *knownhosts.Entry) bool { return len(e.Purposes) > 0 })
	t := newTable(column{title: "ADDRESS", elastic: true}, column{title: "FINGERPRINT"}, column{title: "STATUS"})
	if purposes {
		t.cols = append(t.cols, column{title: "PURPOSE", elastic: true})
	}
	t.cols = append(t.cols, column{title: "COMMENT", elastic: true})
	if lf.long {
		t.cols = append(t.cols, column{title: "FILE", elastic: true, fromLeft: true})
	}
	// Made for each pass, one at a time, as authorizedTable's.
	info := func(e *knownhosts.Entry) hostInfo {
		in := hostInfo{Addresses: slices.Clone(e.Addresses), AnyNamedAddress: e.AnyNamedAddress(), Fingerprint: e.Fingerprint, Purposes: slices.Clone(e.Purposes),
			KeyID: jwk.FormatKeyID(e.SPKIHash), Comment: e.Comment, Status: hostStatus(hosts, e), File: e.File}
		if in.Addresses == nil {
			in.Addresses = []string{}
		}
		return in
	}
	t.each = eachOf(slices.Values(entries), func(e *knownhosts.Entry) []string {
		row := []string{printable(pinnedFor(e)), lf.fingerprint(e.Fingerprint), hostStatus(hosts, e)}
		if purposes {
			row = append(row, pinPurposes(e))
		}
		row = append(row, printable(e.Comment))
		if lf.long {
			row = append(row, printable(file(e.File)))
		}
		return row
	})
	return jsonSeq[hostInfo](eachOf(slices.Values(entries), info)), t
}

// pinPurposes shows a pin's purposes: "any" for every purpose, as ca list
// shows a CA's.
func pinPurposes(e *knownhosts.Entry) string { return purposeName(strings.Join(e.Purposes, ",")) }

func (c *cli) listHosts(lf listFlags) error {
	hosts := knownhosts.Load(knownhosts.HomeOptions(c.home)) // skipped files are reported here, not logged
	reportSkipped(c, "trust-host", c.withoutStandIns(hosts.Problems()))
	reportSkipped(c, "trust-host", c.unheldEntries(StoreTrusted, StoreRevoked))
	infos, t := hostsTable(hosts, lf, c.underHome)
	return c.printList(lf, infos, t,
		fmt.Sprintf("No pinned hosts in %s; pin one with: keytool%s trust-host HOST:PORT", c.layout().TrustedDir(), c.homeFlag()))
}

// unpinHosts unpins the addresses or keys of --remove, repeated or not,
// on one load of the store, proved to hold every copy once for all of
// them (knownhosts.Store.RemoveAll), and says each: what it unpinned, the
// pins of other patterns that still cover an address it unpinned (a
// note) or found unpinned (the error's advice), its error (sayEach).
func (c *cli) unpinHosts(addrOrFPs []string) error {
	if slices.Contains(addrOrFPs, "") {
		return usagef("--remove needs an ADDR or a FINGERPRINT")
	}
	// On a store, the entry of that address or name the copy does not
	// hold (over the bound: no key of it is read) is removed too, or
	// alone.
	unheld := make([]bool, len(addrOrFPs))
	l := knownhosts.Lookups{Addrs: addrOrFPs}
	for i, q := range addrOrFPs {
		var err error
		if unheld[i], err = c.removeUnheld(StoreTrusted, q); err != nil {
			return err
		}
		if f, err := jwk.ParseFingerprint(q); err == nil {
			l.Fingerprints = append(l.Fingerprints, f)
		}
	}
	hosts, finish := c.adminHostStore(l)
	defer finish()
	defer reportUnlocked(c, "trust-host", hosts)
	results := hosts.RemoveAll(addrOrFPs)
	covered := &coverage{hosts: hosts}
	return c.saidOnlyIfWritten("trust-host", func() error {
		errs := make([]error, len(results))
		for i, r := range results {
			var nf *knownhosts.NotFoundError
			switch {
			case !errors.As(r.Err, &nf):
				errs[i] = c.saidUnpinned(r.Removed, r.Err)
				if r.Err == nil && slices.ContainsFunc(r.Removed, func(r knownhosts.Removed) bool { return r.Addr != "" }) {
					c.saidStillCovered(addrOrFPs[i], covered.pins(addrOrFPs[i]))
				}
			case unheld[i]:
				// Not in the copy: removed from the store only.
			default:
				errs[i] = r.Err
				if pins := covered.pins(addrOrFPs[i]); len(pins) > 0 {
					errs[i] = &coveredPinError{err: r.Err, addr: addrOrFPs[i], pins: pins}
				}
			}
		}
		return c.sayEach("trust-host", errs)
	})
}

// unpinKeyOf unpins one key of an address (--remove ADDR --fingerprint
// FP).
func (c *cli) unpinKeyOf(addr, fp string) error {
	if addr == "" {
		return usagef("--remove needs an ADDR or a FINGERPRINT")
	}
	f, err := jwk.ParseFingerprint(fp)
	if err != nil {
		return &usageError{"--fingerprint: " + cmp.Or(c.shortenedHint(fp, "trust-host", "--list"), err.Error())}
	}
	if _, err := knownhosts.NormalizeAddr(addr); err != nil {
		return &usageError{err.Error()}
	}
	hosts, finish := c.adminHostStore(knownhosts.Lookups{Addrs: []string{addr}, Fingerprints: []jwk.Fingerprint{f}})
	defer finish()
	defer reportUnlocked(c, "trust-host", hosts)
	return c.saidOnlyIfWritten("trust-host", func() error {
		return c.saidUnpinned(hosts.RemoveKey(addr, fp))
	})
}

// saidUnpinned says what a removal of trust-host unpinned, and returns
// its error: what was removed is said even where a later step failed
// (the pins the load held go before the proof that finds the rest).
func (c *cli) saidUnpinned(removed []knownhosts.Removed, err error) error {
	for _, r := range removed {
		if r.Addr != "" {
			fmt.Fprintf(c.stdout, "Unpinned %s for %s (%s)\n", r.Fingerprint, r.Addr, c.homePath(r.File))
		} else {
			fmt.Fprintf(c.stdout, "Removed %s (%s)\n", r.Fingerprint, c.homePath(r.File))
		}
	}
	return err
}

// isFile reports whether path names a regular file (or a link to one).
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// notPinLog drops the client's log line for the key it pinned (--yes:
// "pinned the key of a new host", policy=accept-new): trust-host says so
// itself, with the warning first use deserves, and the log line said it a
// second time, in another voice.
type notPinLog struct{ slog.Handler }

func (h notPinLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "pinned the key of a new host" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h notPinLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return notPinLog{h.Handler.WithAttrs(attrs)}
}

func (h notPinLog) WithGroup(name string) slog.Handler { return notPinLog{h.Handler.WithGroup(name)} }

// coveredPinError: trust-host --remove HOST:PORT found no pin of that
// address, but pins of patterns that cover it (a host without a port
// holds every port; *.example, every name) admit keys there all the same.
// "Not pinned" alone would let the user believe the address forgotten.
type coveredPinError struct {
	err  error // the *knownhosts.NotFoundError
	addr string
	pins []*knownhosts.Entry
}

func (e *coveredPinError) Error() string { return e.err.Error() }
func (e *coveredPinError) Unwrap() error { return e.err }

// coverage finds the pins that cover the addresses of one trust-host
// --remove (pins): the store's pins, listed once on first use, and where
// each key's are among them.
type coverage struct {
	hosts   *knownhosts.Store
	entries []*knownhosts.Entry
	at      map[[32]byte][]int // the positions in entries of each key's pins
}

// pins returns the pins of other patterns that admit a key at addr, a
// host:port none of whose own pins is left: those of a host without a
// port, of a wildcard, whose key hosts decides Pinned there, in file
// order. Only the pins of the keys that may be Pinned there are asked
// (knownhosts.Store.KeysPinnableAt), not every pin for every address. A
// store LoadFor narrowed to addr holds every one of them (the files of
// the port-less host, every file with a pattern), as a full one does.
func (c *coverage) pins(addr string) []*knownhosts.Entry {
	norm, err := knownhosts.NormalizeAddr(addr)
	if err != nil {
		return nil
	}
	if c.at == nil {
		c.entries, c.at = c.hosts.Entries(), map[[32]byte][]int{}
		for i, e := range c.entries {
			c.at[e.SPKIHash] = append(c.at[e.SPKIHash], i)
		}
	}
	var at []int
	for sum := range c.hosts.KeysPinnableAt(addr) {
		at = append(at, c.at[sum]...)
	}
	slices.Sort(at)
	var pins []*knownhosts.Entry
	for _, i := range at {
		e := c.entries[i]
		if !e.AnyNamedAddress() && !slices.Contains(e.Addresses, norm) && decideForPin(c.hosts, addr, e).Verdict == knownhosts.Pinned {
			pins = append(pins, e)
		}
	}
	return pins
}

// saidStillCovered says, after trust-host --remove ADDR unpinned the
// address's own pins, the pins of other patterns that still admit keys
// there (as authorize --remove NAME says of a key still authorized under
// another name): "Unpinned" alone would let the user believe the address
// forgotten. The removal itself succeeded: a note, not an error.
func (c *cli) saidStillCovered(addr string, pins []*knownhosts.Entry) {
	if len(pins) == 0 {
		return
	}
	fmt.Fprintf(c.stderr, "keytool trust-host: note: %s is still pinned, by pins that cover it %s\n", termtext.Safe(addr), c.coveredList(pins))
}

// coveredAdvice lists the pins that cover the address, with the commands
// that remove one (coveredList).
func (c *cli) coveredAdvice(e *coveredPinError) string {
	return fmt.Sprintf("But these pins cover %s %s", termtext.Safe(e.addr), c.coveredList(e.pins))
}

// coveredList says how pins cover an address, and lists them with the
// commands that remove one: by its pattern when it has one (for every
// address the pattern covers), else the key everywhere.
func (c *cli) coveredList(pins []*knownhosts.Entry) string {
	var b strings.Builder
	b.WriteString("(a host without a port holds every port; a wildcard, every name it matches):\n")
	for _, p := range pins {
		fmt.Fprintf(&b, "  %s  %s  (%s)\n", strings.Join(p.Addresses, ","), p.Fingerprint, termtext.Safe(p.File))
	}
	b.WriteString("Each is unpinned, for every address it covers, with:")
	for _, p := range pins {
		if len(p.Addresses) == 1 {
			fmt.Fprintf(&b, "\n  %s", c.command("trust-host", "--remove", shellQuote(p.Addresses[0])))
		} else {
			fmt.Fprintf(&b, "\n  %s", c.command("trust-host", "--remove", p.Fingerprint))
		}
	}
	return b.String()
}
