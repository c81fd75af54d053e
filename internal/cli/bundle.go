package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// bundleCommand makes the bundle command, with flag variables of its own.
func bundleCommand() *command {
	var (
		out   string
		force bool
	)
	return &command{
		name:    "bundle",
		uses:    globalHome,
		args:    "authorized|trusted [-o FILE [--force]]",
		summary: "per-key CA bundle (PEM) of the authorized or trusted keys, for OpenSSL, curl, nginx",
		help: `Prints a PEM bundle with one CA certificate per key — the home's authorized
client keys, or its trusted host keys — on standard output, or writes it to
FILE (-o, mode 0644, replacing FILE — but never a file holding a
private key, such as the identity, without --force). Software that only knows certificate
chains then accepts a peer whose 'keytool cert' was made with one of these
keys:

  nginx    ssl_client_certificate bundle.pem; ssl_verify_client on;
  OpenSSL  openssl verify -CAfile bundle.pem peer.pem
  curl     curl --cacert bundle.pem https://host/

Revoked keys are left out, and so are authorizations that have expired.
A bundle cannot say what keytool's own trust files say besides the key:
it does not expire when an authorization does, it does not limit a key to
its "from" networks, and a trusted host key is accepted for any host, not
only for its addresses. Make the bundle again when the keys change. (A key
in a bundle also vouches for certificates it signs for other keys; see
docs/security.md.)

The number of keys in the bundle, and every file skipped, is reported on
standard error. A bundle with no key is an error (exit 1): nothing would
be accepted.`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			set.StringVarP(&out, "output", "o", "", "write the bundle to `FILE` instead of standard output")
			set.BoolVar(&force, "force", false, "with -o: replace FILE even if it holds a private key")
		},
		run: func(c *cli, args []string) error {
			if len(args) != 1 || args[0] != "authorized" && args[0] != "trusted" {
				return usagef("which keys? keytool bundle authorized (client keys) or keytool bundle trusted (host keys)")
			}
			return c.bundle(args[0], out, force)
		},
	}
}

// bundle prints or writes a CA bundle of the authorized or trusted keys.
// Keys are chosen from the stores first and read from their files after,
// so that every key left out is reported before anything is written.
func (c *cli) bundle(which, out string, force bool) error {
	// The revocation list decides for both kinds of keys: the
	// authorized-keys store reads the same revoked_keys files as the
	// trusted-hosts store, and refuses everything if they are unreadable.
	auth := c.localAuthStore()
	var (
		sel bundleSelection
		err error
	)
	switch which {
	case "authorized":
		sel, err = c.selectAuthorized(auth)
	case "trusted":
		sel, err = c.selectTrusted(auth)
	}
	if err != nil {
		return err
	}
	reportSkipped(c, "bundle", sel.problems)
	keys, err := readBundleKeys(sel.cands)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return c.emptyBundle(sel)
	}
	data, err := tlsbridge.CABundle(keys)
	if err != nil {
		return err
	}
	return c.writeBundle(data, len(keys), sel.what, out, force)
}

// bundleCandidate is a key chosen for a bundle, by where it is stored:
// the stores keep fingerprints, not keys.
type bundleCandidate struct {
	file string
	sum  [32]byte
}

// bundleSelection is what one store offers a bundle: the keys chosen, how
// many were left out, the files skipped, and the words that describe the
// keys (what) and how to add one (hint) in messages.
type bundleSelection struct {
	cands    []bundleCandidate
	skipped  int
	problems []error
	what     string
	hint     string
}

// bundleRevoked reports whether the key is revoked. An unreadable
// revocation list is an error, not a "no": a bundle made without it could
// let a revoked key in.
func bundleRevoked(auth *authkeys.Store, sum [32]byte) (bool, error) {
	d := auth.Decide(sum, netip.Addr{})
	var re *authkeys.RevokedError
	if d.Verdict == authkeys.Revoked && errors.As(d.Err, &re) && re.Err != nil {
		return true, fmt.Errorf("a revocation list cannot be read, so no bundle is made: %w", re.Err)
	}
	return d.Verdict == authkeys.Revoked, nil
}

// selectAuthorized chooses the authorized client keys that are neither
// revoked nor expired.
func (c *cli) selectAuthorized(auth *authkeys.Store) (bundleSelection, error) {
	sel := bundleSelection{
		what: "authorized client keys",
		hint: fmt.Sprintf("add one with: keytool%s authorize --name NAME FILE", c.homeFlag()),
	}
	for _, p := range auth.Problems() {
		sel.problems = append(sel.problems, p)
	}
	for _, e := range auth.Entries() {
		keep, err := c.keepAuthorized(auth, e)
		if err != nil {
			return sel, err
		}
		if !keep {
			sel.skipped++
			continue
		}
		sel.cands = append(sel.cands, bundleCandidate{e.File, e.SPKIHash})
	}
	return sel, nil
}

// keepAuthorized decides whether an authorized key goes into the bundle,
// and says why not. A key that is kept is warned about when its
// authorization says more than a bundle can (an expiry, "from" networks),
// since software using the bundle will accept it regardless.
func (c *cli) keepAuthorized(auth *authkeys.Store, e *authkeys.Entry) (bool, error) {
	rev, err := bundleRevoked(auth, e.SPKIHash)
	if err != nil {
		return false, err
	}
	// The store decides, as it would for a handshake; the address is not
	// known, so a key limited to "from" networks answers WrongNetwork and
	// is kept with a warning below.
	switch d := auth.Decide(e.SPKIHash, netip.Addr{}); {
	case rev:
		fmt.Fprintf(c.stderr, "keytool bundle: leaving out %q (%s): revoked\n", e.Name, e.Fingerprint)
		return false, nil
	case d.Verdict == authkeys.Expired:
		fmt.Fprintf(c.stderr, "keytool bundle: leaving out %q (%s): expired at %s\n", e.Name, e.Fingerprint, e.Expires.UTC().Format(time.RFC3339))
		return false, nil
	case !e.Expires.IsZero():
		fmt.Fprintf(c.stderr, "keytool bundle: warning: %q (%s) expires at %s, but the bundle does not: make it again then\n", e.Name, e.Fingerprint, e.Expires.UTC().Format(time.RFC3339))
	}
	if e.From != nil {
		fmt.Fprintf(c.stderr, "keytool bundle: warning: %q (%s) may connect only from %s, which the bundle cannot say: software using it accepts the key from anywhere\n", e.Name, e.Fingerprint, strings.Join(prefixStrings(e.From), ", "))
	}
	return true, nil
}

// selectTrusted chooses the trusted host keys that are not revoked. The
// hosts' addresses are dropped: a bundle cannot tie a key to a host.
func (c *cli) selectTrusted(auth *authkeys.Store) (bundleSelection, error) {
	sel := bundleSelection{
		what: "trusted host keys",
		hint: fmt.Sprintf("pin one with: keytool%s trust-host HOST:PORT", c.homeFlag()),
	}
	hosts := knownhosts.Load(knownhosts.HomeOptions(c.home))
	for _, p := range hosts.Problems() {
		sel.problems = append(sel.problems, p)
	}
	for _, e := range hosts.Entries() {
		rev, err := bundleRevoked(auth, e.SPKIHash)
		if err != nil {
			return sel, err
		}
		if rev {
			sel.skipped++
			fmt.Fprintf(c.stderr, "keytool bundle: leaving out the key of %s (%s): revoked\n", pinnedFor(e), e.Fingerprint)
			continue
		}
		sel.cands = append(sel.cands, bundleCandidate{e.File, e.SPKIHash})
	}
	return sel, nil
}

// readBundleKeys reads the chosen keys from their files, each file once,
// and each key once however many entries hold it: the stores keep
// fingerprints, not keys.
func readBundleKeys(cands []bundleCandidate) ([]*jwk.Key, error) {
	var keys []*jwk.Key
	byFile := map[string][]*jwk.Key{}
	done := map[[32]byte]bool{}
	for _, cd := range cands {
		ks, ok := byFile[cd.file]
		if !ok {
			var err error
			ks, err = jwk.ReadFile(cd.file)
			if err != nil {
				return nil, fmt.Errorf("%w (it changed while the bundle was made? run the command again)", err)
			}
			byFile[cd.file] = ks
		}
		for _, k := range ks {
			if k.SPKIHash() == cd.sum && !done[cd.sum] {
				done[cd.sum] = true
				keys = append(keys, k)
			}
		}
	}
	return keys, nil
}

// emptyBundle is the refusal to make a bundle with no key, which would
// accept no one; it says whether keys were left out or there were none.
func (c *cli) emptyBundle(sel bundleSelection) error {
	if sel.skipped > 0 {
		return fmt.Errorf("no key left for a bundle of %s in %s (%d left out, see above); %s", sel.what, c.home, sel.skipped, sel.hint)
	}
	return fmt.Errorf("no %s in %s, so a bundle would accept no one; %s", sel.what, c.home, sel.hint)
}

// writeBundle puts the bundle on standard output or in out. The count
// goes to standard error so that standard output holds only PEM.
func (c *cli) writeBundle(data []byte, n int, what, out string, force bool) error {
	if n == 1 {
		what = strings.TrimSuffix(what, "s")
	}
	if out == "" || out == "-" {
		if _, err := c.stdout.Write(data); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "Bundle of %d %s\n", n, what)
		return nil
	}
	if err := c.writePublic(out, data, force); err != nil {
		return fmt.Errorf("writing the bundle: %w", err)
	}
	fmt.Fprintf(c.stderr, "Wrote a bundle of %d %s to %s\n", n, what, out)
	return nil
}
