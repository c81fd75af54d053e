package cli

import (
	"bytes"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// overwritesPrivateKeyError means -o names a file that holds a private key
// (the identity, say): writing a certificate over it would lose the key.
// replace is the command that does it anyway.
type overwritesPrivateKeyError struct{ path, replace string }

func (e *overwritesPrivateKeyError) Error() string {
	return fmt.Sprintf("%s holds a private key: writing over it would lose the key; choose another file, or replace it with: %s", e.path, e.replace)
}

// withForce is the command line that asks again for what again asks
// (the command and the flags the user gave), with --force: the advice of
// a refusal that --force overrides, whole, as gen gives it.
func (c *cli) withForce(again []string) string {
	return c.command(append(again[:len(again):len(again)], "--force")...)
}

// writePublic writes public material (a certificate, a bundle) to path,
// mode 0644, atomically, replacing what is there — but no command writes
// over a private key without --force: a file holding one (the identity
// itself, a key written by cert --key-out) is left alone unless force,
// and the refusal gives the command that forces it (again, withForce).
func (c *cli) writePublic(path string, data []byte, force bool, again []string) error {
	return c.writePublicFrom(path, force, again, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writePublicFrom is writePublic for what fill writes piece by piece (a
// bundle of any size): path is replaced only once fill has succeeded.
func (c *cli) writePublicFrom(path string, force bool, again []string, fill func(io.Writer) error) error {
	if !force {
		if private, err := holdsPrivateKey(path); err != nil {
			return err
		} else if private {
			return &overwritesPrivateKeyError{path: path, replace: c.withForce(again)}
		}
	}
	return atomicfile.WriteFrom(path, 0o644, fill)
}

// holdsPrivateKey reports whether the file at path holds a private key.
// A file that does not exist, or holds no key keytool reads, does not.
func holdsPrivateKey(path string) (bool, error) {
	data, _, err := trustfile.Read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case errors.Is(err, trustfile.ErrNotRegular):
		return false, fmt.Errorf("%s is not a regular file; refusing to replace it", path)
	case errors.Is(err, trustfile.ErrTooLarge):
		// Larger than any key file keytool reads (a bundle made before,
		// say): it holds no key keytool could have written or read.
		return false, nil
	case errors.Is(err, fs.ErrPermission):
		// Unreadable to us: most likely a private key of someone else's.
		if _, serr := os.Stat(path); serr == nil {
			return true, nil
		}
		return false, nil
	case err != nil:
		return false, err
	}
	return valueHoldsPrivateKey(data), nil
}

// valueHoldsPrivateKey reports whether data (a key file's bytes, or a
// store entry's) holds a private key: one keytool reads, or — when not
// all of data reads — anything that has a private key's form (looksPrivate).
// A private key keytool cannot read (encrypted, X25519, DSA, damaged) is
// still one: cert -o would otherwise write over it, and sync mirror it
// into a file everyone may read. An entry of a set that does not parse
// does not hide the others.
//
// Nor is one in DER (openssl -outform DER: PKCS#8, encrypted or not, PKCS
// #1, SEC 1), which has no line to match (derPrivateKey), or a private JWK
// beside the keys that read — in a member of a set other than "keys", in
// an attribute, or behind an escaped member name ("\u0064") — which
// jwk.ParseSet passes over (jsonHoldsPrivateJWK).
func valueHoldsPrivateKey(data []byte) bool {
	entries, err := jwk.ParseSet(data)
	read := err == nil
	for _, e := range entries {
		if e.Key != nil && e.Key.IsPrivate() {
			return true
		}
		if e.Err != nil {
			read = false
		}
	}
	if !read {
		return looksPrivate.Match(data) || derPrivateKey(data) || jsonHoldsPrivateJWK(data)
	}
	// Read whole: only JSON with more objects named like keys than keys
	// read, or an escaped name, may hold another (the common file, one
	// key or a set of them, is not decoded again).
	return (countFold(data, "kty") > len(entries) || bytes.Contains(data, []byte(`\u`))) && jsonHoldsPrivateJWK(data)
}

// countFold counts the occurrences of the ASCII lower-case word in data,
// in any case.
func countFold(data []byte, word string) int {
	w, n := []byte(word), 0
	for i := 0; i+len(w) <= len(data); i++ {
		if data[i]|0x20 == w[0] && bytes.EqualFold(data[i:i+len(w)], w) {
			n++
		}
	}
	return n
}

// privateMembers are the JWK members that hold private key material
// (jwk.IsPrivateMember), which looksPrivate and jsonHoldsPrivateJWK match
// in any case.
var privateMembers = jwk.PrivateMembers()

// jsonHoldsPrivateJWK reports whether data is JSON that holds, at any
// depth, an object with a "kty" and a private member (names compared in
// any case, as Go's encoding/json and so go-jose read them).
func jsonHoldsPrivateJWK(data []byte) bool {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return false
	}
	var holds func(v any) bool
	holds = func(v any) bool {
		switch v := v.(type) {
		case map[string]any:
			kty, secret := false, false
			for name, m := range v {
				kty = kty || strings.EqualFold(name, "kty")
				secret = secret || slices.ContainsFunc(privateMembers, func(p string) bool { return strings.EqualFold(name, p) })
				if holds(m) {
					return true
				}
			}
			return kty && secret
		case []any:
			return slices.ContainsFunc(v, holds)
		}
		return false
	}
	return holds(v)
}

// derPrivateKey reports whether data is a private key in DER, of any
// algorithm, by its ASN.1 shape (RFC 5958, RFC 8018, RFC 8017, RFC 5915):
// a PrivateKeyInfo (INTEGER, AlgorithmIdentifier, OCTET STRING, …), an
// EncryptedPrivateKeyInfo (AlgorithmIdentifier, OCTET STRING), SEC 1's
// ECPrivateKey (INTEGER 1, OCTET STRING, …) or a SEQUENCE of six or more
// INTEGERs (PKCS #1's RSAPrivateKey, OpenSSL's DSA key). Public keys,
// certificates and CRLs have none of these shapes: a SubjectPublicKeyInfo
// ends with a BIT STRING, PKCS #1's RSAPublicKey has two INTEGERs.
func derPrivateKey(data []byte) bool {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(data, &seq); err != nil || len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return false
	}
	var elems []asn1.RawValue
	for body := seq.Bytes; len(body) > 0; {
		var e asn1.RawValue
		var err error
		if body, err = asn1.Unmarshal(body, &e); err != nil {
			return false
		}
		elems = append(elems, e)
	}
	is := func(i, tag int) bool {
		return i < len(elems) && elems[i].Class == asn1.ClassUniversal && elems[i].Tag == tag
	}
	switch {
	case len(elems) >= 3 && is(0, asn1.TagInteger) && is(1, asn1.TagSequence) && is(2, asn1.TagOctetString):
		return true // PrivateKeyInfo, OneAsymmetricKey
	case len(elems) == 2 && is(0, asn1.TagSequence) && is(1, asn1.TagOctetString):
		return true // EncryptedPrivateKeyInfo
	case len(elems) >= 2 && is(0, asn1.TagInteger) && bytes.Equal(elems[0].Bytes, []byte{1}) && is(1, asn1.TagOctetString):
		return true // ECPrivateKey
	}
	ints := 0
	for ints < len(elems) && is(ints, asn1.TagInteger) {
		ints++
	}
	return ints >= 6
}

// looksPrivate matches what only a private key holds: the BEGIN line of
// a PEM (OpenSSH, PGP, SSH2) private key, encrypted or not, or a JWK
// member that is private key material (privateMembers, in any case, by
// Unicode simple folding as strings.EqualFold; an unescaped quote ends a
// JSON string, so this matches member names only).
var looksPrivate = regexp.MustCompile(`-{4,5} ?BEGIN [^\n]*PRIVATE KEY|PuTTY-User-Key-File-|(?i)"(` + alternatives(privateMembers) + `)"\s*:`)

// alternatives is a regular expression matching any of words, and nothing
// else where it is bracketed.
func alternatives(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = regexp.QuoteMeta(w)
	}
	return strings.Join(quoted, "|")
}
