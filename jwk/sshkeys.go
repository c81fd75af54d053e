package jwk

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// parseSSH reads OpenSSH public keys in authorized_keys form, one per line,
// with their comments. Blank lines and lines starting with '#' are skipped.
//
// Options are refused except from="…" with IP addresses or CIDR networks,
// which becomes the "from" attribute: silently dropping an option such as a
// host-name from= pattern would grant more than the line says. A second
// from= (in any case: OpenSSH reads option names regardless of case) is
// refused as OpenSSH refuses it.
func parseSSH(data []byte, file string) ([]*Key, error) {
	return allKeys(data, file, parseSSHEntries)
}

// parseSSHEntries calls add for each key line, read or not; an error add
// returns ends the reading and is returned. A file without a key line is
// ErrNoKey.
func parseSSHEntries(data []byte, file string, add func(SetEntry) error) error {
	n := 0
	for i, line := range bytes.Split(data, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		e := SetEntry{Index: n, Line: i + 1}
		n++
		k, err := parseSSHLine(line)
		if err != nil {
			e.Err = &ParseError{File: file, Line: i + 1, Err: err, Key: spkiOf(k)}
		} else {
			e.Key = k
		}
		if err := add(e); err != nil {
			return err
		}
	}
	if n == 0 {
		return &ParseError{File: file, Err: ErrNoKey}
	}
	return nil
}

// parseSSHLine reads one authorized_keys line. On an error in its options
// it returns the key too, which read (ParseError.Key); else nil.
func parseSSHLine(line []byte) (*Key, error) {
	pub, comment, options, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return nil, fmt.Errorf("not an OpenSSH public key line: %v", err)
	}
	cpk, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: OpenSSH key type %s", ErrUnsupportedKey, pub.Type())
	}
	if strings.HasPrefix(pub.Type(), "sk-") {
		return nil, fmt.Errorf("%w: %s is a security-key (FIDO) key, which cannot sign TLS handshakes", ErrUnsupportedKey, pub.Type())
	}
	k, err := NewPublicKey(cpk.CryptoPublicKey())
	if err != nil {
		return nil, err
	}
	attrs := Attributes{}
	if comment != "" {
		attrs.SetString(AttrComment, comment)
	}
	from := false
	for _, opt := range options {
		name, value, _ := strings.Cut(opt, "=")
		if !strings.EqualFold(name, "from") {
			return k, fmt.Errorf("option %q is not supported in a keytool trust file (only from=\"CIDR,…\")", opt)
		}
		if from {
			// OpenSSH refuses such a line ("multiple "from" clauses");
			// keeping either list would be a guess.
			return k, errors.New(`multiple "from" clauses: the option from= appears twice (OpenSSH refuses such a line too); join the networks in one from="…"`)
		}
		from = true
		list := splitList(strings.Trim(value, `"`))
		if _, err := ParsePrefixes(list); err != nil {
			if pe := (*prefixError)(nil); errors.As(err, &pe) {
				return k, fmt.Errorf(`option from="…": %v`, pe)
			}
			return k, errors.New(`option from="…" must list IP addresses or CIDR networks (host-name patterns are not supported)`)
		}
		attrs.SetList(AttrFrom, list)
	}
	if len(attrs) > 0 {
		k.Attrs = attrs
	}
	return k, nil
}
