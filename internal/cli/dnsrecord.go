package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/keytool/keytool/dane"
	"github.com/spf13/pflag"
)

// dnsRecordCommand makes the dns-record command, with flag variables of its own.
func dnsRecordCommand() *command {
	var (
		host  string
		port  string
		types []string
	)
	return &command{
		name:    "dns-record",
		uses:    globalHome | globalIdentity,
		args:    "[--host NAME] [--port PORT] [--matching-type 1|2|0] [FILE]",
		summary: "print the DNS TLSA record(s) that publish a key (DANE), like ssh-keygen -r",
		help: `Prints, in zone-file syntax, the TLSA record to publish in DNS for the key in
FILE (default: the identity; - for standard input; every key of a key set,
for a key rollover), so that clients with --verify-host-key-dns accept the
host's key without a pin when the zone is signed with DNSSEC (docs/dns.md):

  _PORT._tcp.NAME. IN TLSA 3 1 1 <SHA-256 of the key's SubjectPublicKeyInfo>

Usage 3 (DANE-EE), selector 1 (the key, not the certificate): the record
stays valid when the certificate is re-issued for the same key. Its data is
the key's SHA256: fingerprint, in hex.

  --host NAME           the server's DNS name (default: this machine's host
                        name, when it is fully qualified)
  --port PORT           the TCP port clients connect to (default 443)
  --matching-type LIST  1 (SHA-256, the default), 2 (SHA-512), 0 (the whole
                        key); a comma-separated list prints one record of each

Example, for a proxy clients reach at db.example.com:8443:

  keytool -H /etc/keytool dns-record --host db.example.com --port 8443`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			set.StringVar(&host, "host", "", "the server's DNS `NAME` (default: this machine's host name)")
			set.StringVar(&port, "port", "443", "the TCP `PORT` clients connect to")
			set.StringSliceVar(&types, "matching-type", []string{"1"}, "TLSA matching `TYPE`s: 1 (SHA-256), 2 (SHA-512), 0 (full key)")
		},
		run: func(c *cli, args []string) error {
			mts, err := matchingTypes(types)
			if err != nil {
				return err
			}
			if host == "" {
				// The record's name is absolute: a short host name would
				// publish it under a top-level domain.
				if host, err = os.Hostname(); err != nil || !strings.Contains(strings.TrimSuffix(host, "."), ".") {
					return usagef("this machine's host name %q is not a fully qualified DNS name: give the server's name with --host NAME", host)
				}
			}
			name, err := dane.Name(host, port)
			if err != nil {
				return &usageError{fmt.Sprintf("--host %s --port %s: %v", shellQuote(host), shellQuote(port), err)}
			}
			_, keys, err := c.argKeys("dns-record", args)
			if err != nil {
				return err
			}
			for _, k := range keys {
				for _, mt := range mts {
					r, err := dane.RecordFor(k.SPKI(), mt)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.stdout, "%s IN TLSA %s\n", name, r)
				}
			}
			return nil
		},
	}
}

// matchingTypes reads --matching-type: numbers or RFC 7218's names.
func matchingTypes(list []string) ([]uint8, error) {
	var out []uint8
	for _, s := range list {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "1", "sha256", "sha2-256":
			out = append(out, dane.MatchSHA256)
		case "2", "sha512", "sha2-512":
			out = append(out, dane.MatchSHA512)
		case "0", "full":
			out = append(out, dane.MatchFull)
		default:
			return nil, usagef("--matching-type %s: use 1 (SHA-256), 2 (SHA-512) or 0 (the whole key)", strconv.Quote(s))
		}
	}
	return out, nil
}
