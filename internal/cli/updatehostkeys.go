package cli

import (
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// The --update-host-keys flag of the commands that check a server's key
// (connect, proxy --client, trust-host): OpenSSH's UpdateHostKeys, for
// the next keys a pinned host announces (docs/rotation.md).

func (c *cli) registerUpdateHostKeys(set *pflag.FlagSet) {
	set.StringVar(&c.updateHostKeys, "update-host-keys", "yes", "`POLICY` for the next keys a pinned host announces: yes (pin them), ask (show both fingerprints), no")
}

// updateHostKeysOptions sets opts.UpdateHostKeys from the flag.
func (c *cli) updateHostKeysOptions(opts *tlsbridge.ClientOptions) error {
	if c.updateHostKeys == "" {
		return nil // a command without the flag
	}
	u, err := tlsbridge.ParseUpdateHostKeys(c.updateHostKeys)
	if err != nil {
		return usagef("--update-host-keys %s: use yes, ask or no", shellQuote(c.updateHostKeys))
	}
	opts.UpdateHostKeys = u
	return nil
}
