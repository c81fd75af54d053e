package cli

import (
	"fmt"

	"github.com/keytool/keytool/jwk"
	"github.com/spf13/pflag"
)

// pubCommand makes the pub command, with flag variables of its own.
func pubCommand() *command {
	var (
		format  string
		noAttrs bool
	)
	return &command{
		name:    "pub",
		uses:    globalHome | globalIdentity,
		args:    "[-f jwk|pem] [--no-attributes] [FILE]",
		summary: "print the public half of a key, with its attributes",
		help: `Reads FILE (default: the identity; - for standard input) and prints its public
key(s) on standard output — a JWK, a JWK Set, or PEM blocks — with their
attributes. Private members are never printed, even when FILE is a private
key. This is what you hand to a server's administrator for
'keytool authorize', or to a client for 'keytool trust-host --key'.

OpenSSL refuses PEM blocks that carry headers, which is how attributes are
written in PEM: use --no-attributes to feed the key to openssl.`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			set.StringVarP(&format, "format", "f", "jwk", "output `FORMAT`: jwk or pem")
			set.BoolVar(&noAttrs, "no-attributes", false, "print the key material only (for OpenSSL)")
		},
		run: func(c *cli, args []string) error {
			f, err := jwk.ParseFormat(format)
			if err != nil {
				return notAFormat(format, "to print the public half of the key in a file", c.command("pub", shellQuote(format)))
			}
			file, keys, err := c.argKeys("pub", args)
			if err != nil {
				return err
			}
			for i, k := range keys {
				keys[i] = k.PublicHalf() // without the identity's own certificate names
				if noAttrs {
					keys[i].Attrs = nil
				}
			}
			var out []byte
			if len(keys) == 1 {
				out, err = keys[0].MarshalPublic(f)
			} else {
				out, err = jwk.MarshalPublicSet(keys, f)
			}
			if err != nil {
				return fmt.Errorf("%s: %w (keytool pub -f %s --no-attributes %s prints the bare key)", sourceName(file), err, format, shellQuote(file))
			}
			_, err = c.stdout.Write(out)
			return err
		},
	}
}
