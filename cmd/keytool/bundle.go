package main

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

func init() {
	var (
		out   string
		force bool
	)
	register(&command{
		name:    "bundle",
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
		flags: func(fs *pflag.FlagSet, _ *cli) {
			fs.StringVarP(&out, "output", "o", "", "write the bundle to `FILE` instead of standard output")
			fs.BoolVar(&force, "force", false, "with -o: replace FILE even if it holds a private key")
		},
		run: func(c *cli, args []string) error {
			if len(args) != 1 || args[0] != "authorized" && args[0] != "trusted" {
				return usagef("which keys? keytool bundle authorized (client keys) or keytool bundle trusted (host keys)")
			}
			return c.bundle(args[0], out, force)
		},
	})
}

func (c *cli) bundle(which, out string, force bool) error {
	// The revocation list decides for both kinds of keys: the
	// authorized-keys store reads the same revoked_keys files as the
	// trusted-hosts store, and refuses everything if they are unreadable.
	auth, err := c.localAuthStore()
	if err != nil {
		return err
	}
	revoked := func(sum [32]byte) (bool, error) {
		_, err := auth.Lookup(sum, netip.Addr{})
		var re *authkeys.RevokedError
		if errors.As(err, &re) {
			if re.Err != nil {
				return true, fmt.Errorf("a revocation list cannot be read, so no bundle is made: %w", re.Err)
			}
			return true, nil
		}
		return false, nil
	}

	type candidate struct {
		file string
		sum  [32]byte
	}
	var (
		cands    []candidate
		skipped  int
		what     string
		hint     string
		problems []error
		now      = time.Now()
	)
	switch which {
	case "authorized":
		what = "authorized client keys"
		hint = fmt.Sprintf("add one with: keytool%s authorize --name NAME FILE", c.homeFlag())
		for _, p := range auth.Problems() {
			problems = append(problems, p)
		}
		for _, e := range auth.Entries() {
			rev, err := revoked(e.SPKIHash)
			if err != nil {
				return err
			}
			switch {
			case rev:
				skipped++
				fmt.Fprintf(c.stderr, "keytool bundle: leaving out %q (%s): revoked\n", e.Name, e.Fingerprint)
				continue
			case !e.Expires.IsZero() && !now.Before(e.Expires):
				skipped++
				fmt.Fprintf(c.stderr, "keytool bundle: leaving out %q (%s): expired at %s\n", e.Name, e.Fingerprint, e.Expires.UTC().Format(time.RFC3339))
				continue
			case !e.Expires.IsZero():
				fmt.Fprintf(c.stderr, "keytool bundle: warning: %q (%s) expires at %s, but the bundle does not: make it again then\n", e.Name, e.Fingerprint, e.Expires.UTC().Format(time.RFC3339))
			}
			if e.From != nil {
				fmt.Fprintf(c.stderr, "keytool bundle: warning: %q (%s) may connect only from %s, which the bundle cannot say: software using it accepts the key from anywhere\n", e.Name, e.Fingerprint, strings.Join(prefixStrings(e.From), ", "))
			}
			cands = append(cands, candidate{e.File, e.SPKIHash})
		}
	case "trusted":
		what = "trusted host keys"
		hint = fmt.Sprintf("pin one with: keytool%s trust-host HOST:PORT", c.homeFlag())
		hosts, err := knownhosts.Load(knownhosts.HomeOptions(c.home))
		if err != nil {
			return err
		}
		for _, p := range hosts.Problems() {
			problems = append(problems, p)
		}
		for _, e := range hosts.Entries() {
			rev, err := revoked(e.SPKIHash)
			if err != nil {
				return err
			}
			if rev {
				skipped++
				fmt.Fprintf(c.stderr, "keytool bundle: leaving out the key of %v (%s): revoked\n", e.Addresses, e.Fingerprint)
				continue
			}
			cands = append(cands, candidate{e.File, e.SPKIHash})
		}
	}
	reportSkipped(c, "bundle", problems)

	// The stores keep fingerprints, not keys: read each file once for the
	// keys it was loaded with.
	var keys []*jwk.Key
	byFile := map[string][]*jwk.Key{}
	done := map[[32]byte]bool{}
	for _, cd := range cands {
		ks, ok := byFile[cd.file]
		if !ok {
			ks, err = jwk.ReadFile(cd.file)
			if err != nil {
				return fmt.Errorf("%w (it changed while the bundle was made? run the command again)", err)
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
	if len(keys) == 0 {
		if skipped > 0 {
			return fmt.Errorf("no key left for a bundle of %s in %s (%d left out, see above); %s", what, c.home, skipped, hint)
		}
		return fmt.Errorf("no %s in %s, so a bundle would accept no one; %s", what, c.home, hint)
	}
	data, err := tlsbridge.CABundle(keys)
	if err != nil {
		return err
	}
	if len(keys) == 1 {
		what = strings.TrimSuffix(what, "s")
	}
	if out == "" || out == "-" {
		if _, err := c.stdout.Write(data); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "Bundle of %d %s\n", len(keys), what)
		return nil
	}
	if err := c.writePublic(out, data, force); err != nil {
		return fmt.Errorf("writing the bundle: %w", err)
	}
	fmt.Fprintf(c.stderr, "Wrote a bundle of %d %s to %s\n", len(keys), what, out)
	return nil
}
