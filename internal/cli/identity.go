package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// layout is the home's layout: the path of every file in it.
func (c *cli) layout() home.Dir { return home.Dir(c.home) }

// homePath names path, a file of the home, as layout does: under the
// home as the user gave it (-H ./h: h/authorized_keys.d/alice.json), so
// that every command names a file alike, though the stores name theirs
// by absolute path. A path outside the home is left as it is. It is
// for messages: quoted when it holds what a terminal acts on
// (termtext.Safe), as the tables show files (printable), since an
// entry's file may have any name a tool or a copied tree gave it — an
// escape sequence, a newline before a line of keytool's own.
func (c *cli) homePath(path string) string {
	return termtext.Safe(c.underHome(path))
}

func (c *cli) underHome(path string) string {
	if !filepath.IsAbs(path) || filepath.IsAbs(c.home) {
		return path
	}
	if rel, ok := c.relToHome(path); ok {
		return filepath.Join(c.home, rel)
	}
	return path
}

// relToHome is path relative to the home, if it is in it: the stores name
// files by absolute path, so a relative home is made absolute first.
func (c *cli) relToHome(path string) (string, bool) {
	home := c.home
	if filepath.IsAbs(path) && !filepath.IsAbs(home) {
		abs, err := filepath.Abs(home)
		if err != nil {
			return "", false
		}
		home = abs
	}
	rel, err := filepath.Rel(home, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}

// identityPath returns the identity file: -i if given, else the single
// key.{json,jwk,pem} in the home (keyHome).
func (c *cli) identityPath() (string, error) {
	if c.identity != "" {
		return c.identity, nil
	}
	return jwk.FindIdentity(c.keyHome())
}

// keyHome is the home whose identity a command uses: the home, except in
// the work home of a store's command (inStore), which holds the store's
// entries and no key: the identity is still the real home's.
func (c *cli) keyHome() string {
	if c.identityHome != "" {
		return c.identityHome
	}
	return c.home
}

// readPrivateKey reads a private key as the identity's loader
// (loadIdentity) does: the key -i names alone, as ssh -i reads it
// (jwk.ReadPrivateKeyFile); any other is a key of the home — its
// identity, its next key, one a rotation kept — read through the home's
// trust rule (tlsbridge.ReadHomeKey).
func (c *cli) readPrivateKey(path string) (*jwk.Key, error) {
	if c.identity != "" && path == c.identity {
		return jwk.ReadPrivateKeyFile(path)
	}
	return tlsbridge.ReadHomeKey(c.keyHome(), path)
}

// argKeys reads the keys of the optional FILE argument of a command
// (name) that reads the identity by default: pub, dns-record. The home's
// identity is read as the home presents it (tlsbridge.ReadHomeKey): what
// these hand out is the key the home would present.
func (c *cli) argKeys(name string, args []string) (file string, keys []*jwk.Key, err error) {
	switch len(args) {
	case 0:
		if file, err = c.identityPath(); err != nil {
			return "", nil, err
		}
		if c.identity == "" {
			keys, err = c.readKeysWith(file, c.homeKeys, jwk.Parse)
			return file, keys, err
		}
	case 1:
		file = args[0]
	default:
		return "", nil, usagef("%s takes at most one FILE", name)
	}
	keys, err = c.readKeys(file)
	return file, keys, err
}

// homeKeys is the private key of the home in file, read as
// readKeysWith reads a file (a list of keys).
func (c *cli) homeKeys(file string) ([]*jwk.Key, error) {
	k, err := tlsbridge.ReadHomeKey(c.keyHome(), file)
	if err != nil {
		return nil, err
	}
	return []*jwk.Key{k}, nil
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
	keys, data, err := c.readKeysData(file, read, parse)
	if errors.Is(err, jwk.ErrEncrypted) {
		return nil, newEncryptedKeyError(file, data, err)
	}
	return keys, err
}

// readKeysData is readKeysWith, with the bytes of standard input ("-").
func (c *cli) readKeysData(file string, read func(string) ([]*jwk.Key, error), parse func([]byte) ([]*jwk.Key, error)) ([]*jwk.Key, []byte, error) {
	if file != "-" {
		keys, err := read(file)
		return keys, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(c.stdin, jwk.MaxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading standard input: %w", err)
	}
	if len(data) > jwk.MaxFileSize {
		return nil, nil, fmt.Errorf("standard input: %w", jwk.ErrTooLarge)
	}
	keys, err := parse(data)
	var pe *jwk.ParseError
	if errors.As(err, &pe) && pe.File == "" {
		pe.File = "standard input"
	}
	return keys, data, err
}

// encryptedKeyError: a key file given as an argument (authorize,
// trust-host --key, revoke, show, pub FILE, dns-record FILE) holds an
// encrypted private key. keytool reads no encrypted key, and these
// commands need none: the public half does, which ssh-keygen writes
// beside the key as FILE.pub. jwk's own advice (decrypt a copy) is for an
// identity, which must sign; decrypting a key to hand its public half on
// would be a needless copy of the secret.
type encryptedKeyError struct {
	file    string // as given, "-" for standard input
	pub     string // FILE.pub, if it exists
	openSSH bool   // an OPENSSH PRIVATE KEY block (else a PEM one)
	err     error
}

func newEncryptedKeyError(file string, data []byte, err error) *encryptedKeyError {
	e := &encryptedKeyError{file: file, err: err}
	if file != "-" {
		data, _, _ = trustfile.Read(file) // read once already: it is no larger than a key file may be
		if _, serr := os.Stat(file + ".pub"); serr == nil {
			e.pub = file + ".pub"
		}
	}
	e.openSSH = bytes.Contains(data, []byte("BEGIN OPENSSH PRIVATE KEY"))
	return e
}

func (e *encryptedKeyError) Error() string {
	where := sourceName(e.file)
	var pe *jwk.ParseError
	if errors.As(e.err, &pe) && pe.Line > 0 {
		where = fmt.Sprintf("%s:%d", where, pe.Line)
	}
	return where + ": the private key is encrypted, and keytool reads only unencrypted keys; only its public key is needed here"
}

func (e *encryptedKeyError) Unwrap() error { return e.err }

// encryptedKeyAdvice names the public key file to give instead, or the
// command that writes it (asking the passphrase, leaving the key as it is).
func encryptedKeyAdvice(e *encryptedKeyError) string {
	switch {
	case e.pub != "":
		return "Its public key is in " + shellQuote(e.pub) + ": give that file instead."
	case e.file == "-" && e.openSSH:
		return "Give its public key instead (the .pub file ssh-keygen wrote beside it, or: ssh-keygen -y -f FILE > FILE.pub)."
	case e.file == "-":
		return "Give its public key instead (openssl pkey -in FILE -pubout -out FILE.pub writes it)."
	case e.openSSH:
		return fmt.Sprintf("Write its public key (ssh-keygen asks the passphrase), then give that file instead:\n  ssh-keygen -y -f %s > %s", shellQuote(e.file), shellQuote(e.file+".pub"))
	}
	return fmt.Sprintf("Write its public key (openssl asks the passphrase), then give that file instead:\n  openssl pkey -in %s -pubout -out %s", shellQuote(e.file), shellQuote(e.file+".pub"))
}
