package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/jwk"
)

// layout is the home's layout: the path of every file in it.
func (c *cli) layout() home.Dir { return home.Dir(c.home) }

// identityPath returns the identity file: -i if given, else the single
// key.{json,jwk,pem} in the home.
func (c *cli) identityPath() (string, error) {
	if c.identity != "" {
		return c.identity, nil
	}
	return jwk.FindIdentity(c.home)
}

// argKeys reads the keys of the optional FILE argument of a command
// (name) that reads the identity by default: pub, dns-record.
func (c *cli) argKeys(name string, args []string) (file string, keys []*jwk.Key, err error) {
	switch len(args) {
	case 0:
		if file, err = c.identityPath(); err != nil {
			return "", nil, err
		}
	case 1:
		file = args[0]
	default:
		return "", nil, usagef("%s takes at most one FILE", name)
	}
	keys, err = c.readKeys(file)
	return file, keys, err
}

// readKeys reads the keys in file, or on standard input for "-".
func (c *cli) readKeys(file string) ([]*jwk.Key, error) {
	return c.readKeysWith(file, jwk.ReadFile, jwk.Parse)
}

// readKeysAnyUse is readKeys for the commands that use no key — revoke,
// which refuses the keys, and show, which describes them: a key marked for
// anything but signatures is read too (jwk.ParseAnyUse).
func (c *cli) readKeysAnyUse(file string) ([]*jwk.Key, error) {
	return c.readKeysWith(file, jwk.ReadFileAnyUse, jwk.ParseAnyUse)
}

func (c *cli) readKeysWith(file string, read func(string) ([]*jwk.Key, error), parse func([]byte) ([]*jwk.Key, error)) ([]*jwk.Key, error) {
	if file != "-" {
		return read(file)
	}
	data, err := io.ReadAll(io.LimitReader(c.stdin, jwk.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading standard input: %w", err)
	}
	if len(data) > jwk.MaxFileSize {
		return nil, fmt.Errorf("standard input: %w", jwk.ErrTooLarge)
	}
	keys, err := parse(data)
	var pe *jwk.ParseError
	if errors.As(err, &pe) && pe.File == "" {
		pe.File = "standard input"
	}
	return keys, err
}
