package cli

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/jwk"
	"github.com/spf13/pflag"
)

// certCommand makes the cert command, with flag variables of its own.
func certCommand() *command {
	var (
		out    string
		hosts  []string
		keyOut string
		force  bool
	)
	return &command{
		name:    "cert",
		uses:    globalHome | globalIdentity,
		args:    "[-o FILE] [--host NAME,…] [--key-out FILE] [--force]",
		summary: "print the identity's certificate (PEM), for nginx, curl, OpenSSL…",
		help: `Prints the identity's self-signed certificate in PEM on standard output, or
writes it to FILE (-o, mode 0644, replacing FILE — but never a file holding
a private key, such as the identity, without --force). Peers that pin the
key ignore everything in it but the key; software that checks names (curl,
browsers) needs --host: DNS names and IP addresses, comma-separated or
repeated. Without --host, the certificate names what gen --host saved in the
identity. A new certificate is made each time (a new serial number), for the
same key: pins and bundles keep working.

In PKI mode (HOME/cert.pem exists) the CA-issued chain in it is printed
instead, leaf first, and --host has no effect.

--key-out FILE writes the identity's private key as an unencrypted PKCS#8
PEM "PRIVATE KEY" (mode 0600) for software that cannot read key.json, such
as nginx (ssl_certificate_key). An existing FILE is never replaced without
--force, nor with it when FILE holds public keys or certificates only (a
pub_key.json, the certificate -o wrote): those are made to be shared.
Neither FILE may be the home's own: --key-out HOME/key.pem would be a
second identity, which the home cannot load, and -o HOME/cert.pem a
certificate presented in place of the identity's own. The home is the
command's, or any directory holding a home's key (key.*, key.next.*)
that is not the identity's.`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			set.StringVarP(&out, "output", "o", "", "write the certificate to `FILE` instead of standard output")
			set.StringSliceVar(&hosts, "host", nil, "DNS `NAME`s and IP addresses the certificate names (comma-separated)")
			set.StringVar(&keyOut, "key-out", "", "also write the private key, PKCS#8 PEM, to `FILE` (mode 0600)")
			set.BoolVar(&force, "force", false, "replace an existing --key-out FILE, or a private key at -o FILE")
		},
		run: func(c *cli, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q (names go in --host)", args[0])
			}
			if force && keyOut == "" && (out == "" || out == "-") {
				return usagef("--force goes with --key-out or -o FILE")
			}
			if keyOut == "-" {
				return usagef("--key-out needs a FILE: a private key is never printed")
			}
			if keyOut != "" && out != "" && out != "-" && filepath.Clean(keyOut) == filepath.Clean(out) {
				return usagef("-o and --key-out name the same file %s", out)
			}
			// The command as given, for the advice of a refusal that
			// --force overrides.
			again := []string{"cert"}
			if out != "" {
				again = append(again, "-o", shellQuote(out))
			}
			if len(hosts) > 0 {
				again = append(again, "--host", shellQuote(strings.Join(hosts, ",")))
			}
			if keyOut != "" {
				again = append(again, "--key-out", shellQuote(keyOut))
			}
			return c.cert(out, hosts, keyOut, force, again)
		},
	}
}

// cert prints or writes the identity's certificate, and with keyOut its
// private key; again is the command as given (the advice of a refusal).
func (c *cli) cert(out string, hosts []string, keyOut string, force bool, again []string) error {
	if err := c.notTheHomesOwn(out, keyOut, nil); err != nil {
		return err
	}
	id, err := c.loadIdentity(hosts...)
	if err != nil {
		return err
	}
	if err := c.notTheHomesOwn(out, keyOut, id.Key); err != nil {
		return err
	}
	if _, err := os.Stat(c.layout().Cert()); err == nil {
		if len(hosts) > 0 {
			fmt.Fprintf(c.stderr, "keytool cert: warning: %s exists (PKI mode): printing its chain; --host has no effect\n", c.layout().Cert())
		}
	}
	if keyOut != "" {
		if err := keyOutPublic(keyOut); err != nil {
			return err
		}
		der, err := x509.MarshalPKCS8PrivateKey(id.Key.Signer())
		if err != nil {
			return err
		}
		data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if force {
			err = atomicfile.Write(keyOut, data, 0o600)
		} else {
			err = atomicfile.Create(keyOut, data, 0o600)
		}
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; keep it, or replace it with: %s", keyOut, c.withForce(again))
		}
		if err != nil {
			return fmt.Errorf("writing the private key: %w", err)
		}
		// Copies of the key that killed writes of FILE left, as a write
		// of the identity removes them (jwk.WritePrivateKeyFile).
		atomicfile.RemoveStale(keyOut)
		fmt.Fprintf(c.stderr, "Wrote the private key of %s to %s (PKCS#8 PEM, mode 0600)\n", id.Key.Fingerprint(), keyOut)
	}
	data := id.CertificatePEM()
	if out == "" || out == "-" {
		_, err = c.stdout.Write(data)
		return err
	}
	if err := c.writePublic(out, data, force, again); err != nil {
		return fmt.Errorf("writing the certificate: %w", err)
	}
	fmt.Fprintf(c.stderr, "Wrote the certificate of %s to %s\n", id.Key.Fingerprint(), out)
	return nil
}

// keyOutPublic refuses, even with --force, to write the private key over a
// --key-out FILE that holds public keys or certificates only: the home's
// pub_key.json, a client's key, the certificate -o wrote (-o and
// --key-out swapped) — files made to be copied to other machines, where
// the private key would then go, as gen -i refuses (publicOnly). Found by
// review, 2026-12-05: --force wrote it.
func keyOutPublic(path string) error {
	keys, public := publicKeysOnly(path)
	if !public {
		return nil
	}
	return fmt.Errorf("%s holds a public key or certificate%s, not a private key: --key-out never writes the private key over one, --force or not (it is made to be shared, and the key would go with it); name a file of its own for the key", path, describeKeys(keys))
}

// notTheHomesOwn refuses a -o or --key-out FILE that is a file of the
// home's identity — cert -o cert.pem --key-out key.pem, nginx's usual
// names, run in the home directory: the key would be a second identity
// beside key.json (a home of two identities loads nowhere: no command, no
// restart, and a running proxy refuses every reload), the certificate the
// home's cert.pem, putting it in PKI mode with a certificate frozen at
// that moment, which announces no next key and which rotate refuses. Found
// by review, 2026-12-05: both were written, exit 0.
//
// The home is the one the command uses or, once the identity k is loaded
// (nil before), any directory holding a key of a home's (key.*,
// key.next.*) that is not k: run in a service's home, KEYTOOL_HOME naming
// another, the same command made a second identity there — with --force,
// wrote over its identity, which was lost — or a cert.pem for another
// key, which the home no longer loaded with (found by review,
// 2026-12-05). nginx's own pair, k's key and certificate in a directory
// of their own, is refreshed as before.
func (c *cli) notTheHomesOwn(out, keyOut string, k *jwk.Key) error {
	keyNames := append(home.IdentityNames(), home.NextNames()...)
	if c.isHomeFile(keyOut, keyNames...) || k != nil && slices.Contains(keyNames, filepath.Base(keyOut)) && holdsOtherKey(filepath.Dir(keyOut), k) {
		return fmt.Errorf("%s is where the home %s keeps its identity's private key: --key-out writes a copy for other software, which next to the identity would be a second identity, and the home would load nowhere; write it elsewhere (nginx reads any path)", keyOut, c.homeOf(keyOut))
	}
	certName := filepath.Base(c.layout().Cert())
	if c.isHomeFile(out, certName) || k != nil && out != "" && filepath.Base(out) == certName && holdsOtherKey(filepath.Dir(out), k) {
		return fmt.Errorf("%s is where the home %s keeps a CA-issued certificate (PKI mode): this one would be presented in place of the certificate made at each start, naming no next key; write it elsewhere", out, c.homeOf(out))
	}
	return nil
}

// holdsOtherKey reports whether dir holds a key file of a home's (key.*,
// key.next.*) whose key is not k, or one that cannot be read: another
// home's.
func holdsOtherKey(dir string, k *jwk.Key) bool {
	for _, p := range homeKeyFiles(dir) {
		keys, err := jwk.ReadPublicKeys(p)
		if err != nil || len(keys) != 1 || !keys[0].Equal(k) {
			return true
		}
	}
	return false
}

// homeOf names the home a file of notTheHomesOwn's is in: the command's,
// or the directory the file is in.
func (c *cli) homeOf(path string) string {
	if c.isHomeFile(path, filepath.Base(path)) {
		return c.keyHome()
	}
	return filepath.Dir(path)
}

// isHomeFile reports whether path is one of names in the directory of the
// home whose identity the command uses, however it is spelled (relative,
// through a link to the directory).
func (c *cli) isHomeFile(path string, names ...string) bool {
	if path == "" || path == "-" || !slices.Contains(names, filepath.Base(path)) {
		return false
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return false
	}
	h, err := os.Stat(c.keyHome())
	return err == nil && os.SameFile(dir, h)
}
