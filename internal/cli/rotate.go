package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// Announced rotation (docs/rotation.md): gen --next makes the next key,
// which the identity's certificate announces; rotate makes it current.

// genNext makes the home's next key (gen --next): key.next<ext>, 0600, and
// pub_key.next<ext>, 0644, beside the identity, which must exist. Its type
// is t, or the identity's when t is "" (no -t): a rotation changes the key,
// not its kind, unless asked to.
func (c *cli) genNext(t jwk.Type, f jwk.Format, names tlsbridge.CertOptions, force bool, again []string) error {
	if c.identity != "" {
		return usagef("--next makes the home's next key; it has no use with -i")
	}
	// The lock of the identity's writers, from the read of the identity
	// (the next key's type and names come from it) to the last write: a
	// rotate at the same moment comes wholly before or after.
	unlock, done, err := c.lockIdentity(c.home)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := jwk.FindIdentity(c.home)
	if err != nil {
		return err
	}
	// The identity is read as the home presents it: a next key is
	// announced by the identity's certificate, so one made for an
	// identity the home refuses would never be announced — and would
	// lose the identity's names, which it takes from it.
	ck, err := c.readPrivateKey(cur)
	if err != nil {
		return err
	}
	h := c.layout()
	keyPath := filepath.Join(c.home, "key.next"+f.Ext())
	var existing []string
	for _, p := range h.Next() {
		if _, err := os.Lstat(p); err == nil {
			existing = append(existing, p)
		}
	}
	if len(existing) > 0 && !force {
		return fmt.Errorf("the home already has a next key (%s): make it current with: %s, or replace it with: %s",
			existing[0], c.command("rotate"), c.withForce(append([]string{"gen"}, again...)))
	}
	k, err := c.makeNextKey(cur, ck, t, again)
	if err != nil {
		return err
	}
	if len(names.DNSNames) == 0 && len(names.IPAddresses) == 0 {
		// The identity's names stay the identity's names after the
		// rotation.
		if saved, err := ck.Attrs.List(jwk.AttrNames); err == nil {
			names = tlsbridge.NamesOptions(saved...)
		}
	}
	tlsbridge.SaveNames(k, names)
	others := slices.DeleteFunc(slices.Clone(existing), func(p string) bool { return p == keyPath })
	// The next key's public halves go first, then the key is written,
	// then its public half: killed in between, the next key has its own
	// public half or none. Written after the key, a gen --next --force
	// killed between the two left pub_key.next.* the replaced next key's,
	// which no file of the home keeps, and a load refuses such a home
	// (tlsbridge.PublicKeyError; docs/design.md, "Concurrent writers").
	if _, err := removePublicHalves(h.NextPublic(), keyPath); err != nil {
		return err
	}
	if err := writeRoleKey(keyPath, others, len(others) < len(existing), k, f, force); err != nil {
		return err
	}
	pubPath := home.PublicOf(keyPath, f.Ext())
	if err := jwk.WritePublicKeyFile(pubPath, k, f, jwk.Overwrite); err != nil {
		return fmt.Errorf("the next key is in %s, but its public half could not be written (run: %s): %w", keyPath, c.pubInto(pubPath, f), err)
	}
	done()
	fmt.Fprintf(c.stdout, "Generated the next %s key in %s\nPublic key in %s\nFingerprint: %s\nKey ID: %s\n",
		k.Algorithm(), keyPath, pubPath, k.Fingerprint(), k.KeyID())
	if _, err := os.Stat(h.Cert()); err == nil {
		fmt.Fprintf(c.stdout, "%s is a CA-issued certificate: it cannot announce the next key. Install the next key's certificate as %s, then run: %s\n",
			h.Cert(), h.Cert(), c.command("rotate"))
		return nil
	}
	// The home may be a server's or a client's: say who learns the key
	// on each side (a server only where the client's entry is marked).
	fmt.Fprintf(c.stdout, "The identity's certificate announces it from now on. Once its peers have learned it (the clients that pin this host; the servers whose entry for this client has authorize --accept-rotation), run: %s\n", c.command("rotate"))
	return nil
}

// rotateCommand makes the rotate command.
func rotateCommand() *command {
	return &command{
		name:    "rotate",
		uses:    globalHome,
		args:    "",
		summary: "make the home's next key (gen --next) its identity, keeping the old one",
		help: `Makes HOME/key.next.* the identity: the identity is first kept as
HOME/key.old.<UTC time>.<ext> (until you remove it), then the next key
takes its name, and its public half becomes pub_key.*. The home holds a
complete identity at every moment: a running keytool proxy (or a Go
server watching its identity) presents the new key from its next
handshake, and open connections go on.

Clients that connected while the next key was announced (gen --next) and
pinned it (--update-host-keys, the default yes) connect without a
question; others get the changed-key error. With a CA-issued cert.pem,
the certificate must already be the next key's.

A home that holds a next key and no identity (removed by hand after it
announced the next key) has its next key made the identity, as the
rotation would have, with no old identity to keep.

A rotation cut short (killed, or the machine lost, after the next key took
the identity's name and before pub_key.* was written) is finished by
rotate run again, as by any command that loads the home: pub_key.* is
written from the identity.

Example:
  keytool gen --next
  # ... clients connect and learn the next key ...
  keytool rotate`,
		flags: func(*pflag.FlagSet, *cli) {},
		run: func(c *cli, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			r, err := tlsbridge.RotateHome(c.home)
			var none *tlsbridge.NoNextKeyError
			if errors.As(err, &none) {
				return fmt.Errorf("%s has no next key to rotate to: make one with: %s", c.home, c.command("gen", "--next"))
			}
			if r != nil {
				reportIdentityUnlocked(c, "rotate", r.Unlocked)
			}
			if err != nil {
				return err
			}
			if r.Finished {
				fmt.Fprintf(c.stdout, "The identity is %s (%s): the rotation cut short before it wrote the public half is finished (%s)\n", r.New.Fingerprint(), r.KeyFile, r.PublicFile)
				return nil
			}
			if r.Old == nil {
				fmt.Fprintf(c.stdout, "The identity is now %s (%s), the next key of a home that had no identity\n", r.New.Fingerprint(), r.KeyFile)
				return nil
			}
			fmt.Fprintf(c.stdout, "The identity is now %s (%s)\nThe old identity %s is kept in %s: remove it once nothing uses it\n",
				r.New.Fingerprint(), r.KeyFile, r.Old.Fingerprint(), r.OldFile)
			return nil
		},
	}
}

// makeNextKey makes the next key of the identity ck, read from cur: of
// type t, or ck's when t is "", and never of a weaker kind than ck.
func (c *cli) makeNextKey(cur string, ck *jwk.Key, t jwk.Type, again []string) (*jwk.Key, error) {
	if t == "" {
		if t = ck.Type(); t == "" {
			return nil, fmt.Errorf("%s is an %s key, a size gen does not make: name the next key's type with: %s",
				cur, ck.Algorithm(), c.command(append(append([]string{"gen"}, again...), "-t", "TYPE")...))
		}
	}
	k, err := jwk.Generate(t)
	if err != nil {
		return nil, err
	}
	// Peers refuse to learn a next key weaker than the identity
	// (tlsbridge.CheckNextKey, docs/design.md "Announced rotation"), and
	// the identity would not load with it.
	if err := tlsbridge.CheckNextKey(ck, k); err != nil {
		return nil, fmt.Errorf("a next %s key is weaker than the identity's, %s: its peers would refuse to learn it (a rotation keeps or strengthens a key's kind); name a type at least as strong with: %s",
			k.Algorithm(), ck.Algorithm(), c.command(append(append([]string{"gen"}, withoutType(again)...), "-t", "TYPE")...))
	}
	return k, nil
}

// withoutType is the flags again without a -t and its value.
func withoutType(again []string) []string {
	var out []string
	for i := 0; i < len(again); i++ {
		if again[i] == "-t" {
			i++
			continue
		}
		out = append(out, again[i])
	}
	return out
}
