package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// notAFormat refuses a -f that names no format. ssh-keygen's -f is the
// key file, so "keytool gen -f mykey" is a habit; gen and pub keep -f for
// the format (as they always had it, and as pub -f pem is documented), and
// say how to name the file instead: suggestion is the command line that
// does (docs/cli.md, gen).
func notAFormat(value, how, suggestion string) error {
	if formatNames[strings.ToLower(value)] {
		_, err := jwk.ParseFormat(value)
		return &usageError{err.Error()} // a format, not one keytool writes
	}
	return usagef("-f takes a format (jwk or pem), not %q; %s, use: %s", value, how, suggestion)
}

// formatNames are formats keytool does not write: -f with one of them is
// a wrong format, not a file name.
var formatNames = map[string]bool{"der": true, "pkcs1": true, "pkcs8": true, "sec1": true, "openssh": true, "ssh": true,
	"rfc4716": true, "pkcs12": true, "p12": true, "pfx": true, "x509": true, "jwks": true}

// genCommand makes the gen command, with flag variables of its own.
func genCommand() *command {
	var (
		typ    string
		format string
		hosts  []string
		force  bool
		next   bool
		flags  *pflag.FlagSet
	)
	return &command{
		name:    "gen",
		uses:    globalHome | globalIdentity,
		args:    "[-t TYPE] [-f jwk|pem] [--host NAME,…] [--next] [--force]",
		summary: "create this machine's identity: a private key and its public half",
		help: `Writes the private key to HOME/key.json (or key.pem with -f pem), mode 0600,
and its public half to HOME/pub_key.json, mode 0644, creating HOME (0700) if
needed. With -i FILE the private key goes to FILE and the public half beside
it, as pub_<name>. An existing identity is never replaced without --force.

--host NAME,… saves DNS names and IP addresses in the private key: the
identity's self-signed certificate names them from then on (cert --host and
proxy --host name others for one run). A client that pinned this key
without an address — its pub_key.json copied as it is into the client's
trusted_hosts.d/ — admits it only where the certificate names the host it
dials. The public half leaves the names out.

--next makes the home's next key instead: HOME/key.next.json (0600) and
pub_key.next.json (0644), beside the identity, which stays. The identity's
self-signed certificate announces the next key from then on (a running
proxy picks it up without a restart), and clients that connect and verify
the current key pin the next one too (--update-host-keys); 'keytool
rotate' makes it the identity (docs/rotation.md). Without --host it keeps
the identity's certificate names, and without -t the identity's type; a
type weaker than the identity's (a smaller curve or RSA modulus, or RSA
after ec384) is refused, as its peers would refuse to learn it. The next
key signs its own announcement: peers learn only keys whose holder did.

Types: ec256 (ECDSA P-256, the default), ec384, ec521, rsa2048, rsa3072,
rsa4096, ed25519.`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			flags = set
			set.StringVarP(&typ, "type", "t", string(jwk.EC256), "key `TYPE`")
			set.StringVarP(&format, "format", "f", "jwk", "file `FORMAT`: jwk or pem")
			set.StringSliceVar(&hosts, "host", nil, "DNS `NAME`s and IP addresses the identity's certificate names (comma-separated)")
			set.BoolVar(&force, "force", false, "replace an existing identity")
			set.BoolVar(&next, "next", false, "make the home's next key (key.next.*), which the identity announces and keytool rotate makes current")
		},
		run: func(c *cli, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			t, err := jwk.ParseType(typ)
			if err != nil {
				return &usageError{err.Error()}
			}
			f, err := jwk.ParseFormat(format)
			if err != nil {
				args := []string{"gen"}
				if t != jwk.EC256 {
					args = append(args, "-t", string(t))
				}
				if force {
					args = append(args, "--force")
				}
				if c.identity != "" { // -i names the file already
					return notAFormat(format, "-i names the key file already", c.command(args...))
				}
				return notAFormat(format, "to write the key to a file", c.command(append([]string{"-i", shellQuote(format)}, args...)...))
			}
			opts, err := certOptions(hosts)
			if err != nil {
				return err
			}
			// The flags that ask for this key again, for the advice of a
			// refusal: --force alone would make a key of the default type.
			var again []string
			if next {
				again = append(again, "--next")
			}
			// A next key without -t takes the identity's type, so -t
			// ec256 given with --next is repeated too.
			typed := flags.Changed("type")
			if t != jwk.EC256 || next && typed {
				again = append(again, "-t", string(t))
			}
			if f != jwk.JWK {
				again = append(again, "-f", format)
			}
			if len(hosts) > 0 {
				again = append(again, "--host", shellQuote(strings.Join(hosts, ",")))
			}
			if next {
				if !typed {
					t = "" // the identity's type: a rotation keeps it
				}
				return c.genNext(t, f, opts, force, again)
			}
			return c.gen(t, f, opts, force, again)
		},
	}
}

// gen makes the identity; again is the flags given (-t, -f, --host), which
// the advice of a refusal repeats.
func (c *cli) gen(t jwk.Type, f jwk.Format, names tlsbridge.CertOptions, force bool, again []string) error {
	keyPath := c.identity
	var others []string // identities in other formats, replaced by --force
	if keyPath == "" {
		keyPath = filepath.Join(c.home, "key"+f.Ext())
		for _, name := range jwk.IdentityFileNames() {
			if p := filepath.Join(c.home, name); p != keyPath {
				if _, err := os.Lstat(p); err == nil {
					others = append(others, p)
				}
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return err
	}
	pubPath := filepath.Join(filepath.Dir(keyPath), "pub_"+strings.TrimSuffix(filepath.Base(keyPath), filepath.Ext(keyPath))+f.Ext())

	existing := others
	if _, err := os.Lstat(keyPath); err == nil {
		existing = append([]string{keyPath}, others...)
	}
	if err := publicOnly(c.identity); err != nil {
		return err
	}
	if len(existing) > 0 && !force {
		return c.refuseExisting(again, existing...)
	}
	// What --force replaces, described before it is gone.
	replaced := make([]string, len(existing))
	for i, p := range existing {
		replaced[i] = p + describeKeyFile(p)
	}

	k, err := jwk.Generate(t)
	if err != nil {
		return err
	}
	tlsbridge.SaveNames(k, names)
	mode := jwk.CreateNew
	if force {
		mode = jwk.Overwrite
	}
	if err := jwk.WritePrivateKeyFile(keyPath, k, f, mode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return c.refuseExisting(again, keyPath) // another process won the race
		}
		return err
	}
	for _, p := range others {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("the new identity is in %s, but the old %s could not be removed: %w", keyPath, p, err)
		}
	}
	if err := jwk.WritePublicKeyFile(pubPath, k, f, jwk.Overwrite); err != nil {
		return fmt.Errorf("the identity is in %s, but its public half could not be written (run: keytool%s pub > %s): %w", keyPath, c.homeFlag(), pubPath, err)
	}
	for _, r := range replaced {
		fmt.Fprintf(c.stdout, "Replaced the identity %s\n", r)
	}
	// Public halves left by an identity that no longer exists (replaced
	// just now, or deleted by hand) would show a key that is not this
	// machine's.
	if c.identity == "" {
		for _, name := range jwk.PublicFileNames() {
			stale := filepath.Join(c.home, name)
			if stale == pubPath {
				continue
			}
			switch err := os.Remove(stale); {
			case err == nil:
				fmt.Fprintf(c.stdout, "Removed %s: the public half of an identity that is gone\n", stale)
			case !errors.Is(err, fs.ErrNotExist):
				fmt.Fprintf(c.stderr, "warning: %s, the public half of an identity that is gone, could not be removed: %v\n", stale, err)
			}
		}
	}
	fmt.Fprintf(c.stdout, "Generated %s key in %s\nPublic key in %s\nFingerprint: %s\nKey ID: %s\n",
		k.Algorithm(), keyPath, pubPath, k.Fingerprint(), k.KeyID())
	if names, _ := k.Attrs.List(jwk.AttrNames); len(names) > 0 {
		fmt.Fprintf(c.stdout, "Certificate names: %s\n", strings.Join(names, ", "))
	}
	return nil
}

// publicOnly refuses, even with --force, to write a private key over the
// file -i names when that file holds public keys only: it is no identity
// to replace but, most likely, the public half mistaken for the key (ssh's
// id_ed25519.pub), a file made to be copied to other machines, where the
// private key would then go.
func publicOnly(path string) error {
	keys, err := jwk.ReadFile(path)
	if err != nil || len(keys) == 0 {
		return nil
	}
	for _, k := range keys {
		if k.IsPrivate() {
			return nil
		}
	}
	return fmt.Errorf("%s holds a public key%s, not an identity: gen writes a private key to the file -i names, and never over a public key, which is made to be shared; name the private key file, or a new one: keytool -i FILE gen",
		path, describeKeys(keys)) // the keys read, not the file read again
}

// refuseExisting explains that an identity exists, naming every file that
// --force would replace, and how to replace it with the key asked for
// (again: the flags given).
func (c *cli) refuseExisting(again []string, paths ...string) error {
	descs := make([]string, len(paths))
	for i, p := range paths {
		descs[i] = p + describeKeyFile(p)
	}
	return fmt.Errorf("an identity already exists: %s; keep it, or replace it with: %s", strings.Join(descs, ", "),
		c.withForce(append([]string{"gen"}, again...)))
}

// describeKeyFile says which key a file holds, " (ECDSA P-256, SHA256:…)",
// or nothing if it cannot be read — a FIFO or a device included, which
// the reader (trustfile.Read) opens without blocking and refuses. The
// file's mode is not checked: this only names a key that is about to be
// refused or replaced.
func describeKeyFile(path string) string {
	keys, err := jwk.ReadPublicKeys(path)
	if err != nil {
		return ""
	}
	return describeKeys(keys)
}

// describeKeys names the first of a file's keys, as describeKeyFile does:
// " (ALGORITHM, FINGERPRINT)", or "" for none.
func describeKeys(keys []*jwk.Key) string {
	if len(keys) == 0 {
		return ""
	}
	return " (" + keys[0].Algorithm() + ", " + keys[0].Fingerprint() + ")"
}
