package jwk

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"slices"
	"strconv"

	"github.com/keytool/keytool/internal/termtext"
)

// The JWK members that say what a key is for (RFC 7517 sections 4.2 and
// 4.3). keytool does one thing with a key: TLS authentication, which is a
// signature — an identity's private key signs the handshake, a trusted
// public key verifies a peer's. A key its owner marked for something else
// (encryption, key agreement) is refused wherever keytool reads it, trust
// stores and identities alike: using it to sign would be the cross-protocol
// use the members are there to prevent (docs/keys.md, "What a key is for").
const (
	AttrUse    = "use"
	AttrKeyOps = "key_ops"
	AttrAlg    = "alg"
)

// encryptionAlgs are the JWE key management algorithms (RFC 7518
// section 4.1, RFC 7518's registry as amended by RFC 8037 for OKP keys):
// a key whose "alg" is one of them is marked for encryption or key
// agreement as surely as by "use":"enc". Any other "alg" is left alone —
// a signature algorithm, or a name keytool does not know, which RFC 7517
// lets a key carry.
var encryptionAlgs = map[string]bool{
	"RSA1_5": true, "RSA-OAEP": true, "RSA-OAEP-256": true, "RSA-OAEP-384": true, "RSA-OAEP-512": true,
	"A128KW": true, "A192KW": true, "A256KW": true, "dir": true,
	"ECDH-ES": true, "ECDH-ES+A128KW": true, "ECDH-ES+A192KW": true, "ECDH-ES+A256KW": true,
	"A128GCMKW": true, "A192GCMKW": true, "A256GCMKW": true,
	"PBES2-HS256+A128KW": true, "PBES2-HS384+A192KW": true, "PBES2-HS512+A256KW": true,
}

// signatureAlgs are the JWS algorithms (RFC 7518 section 3.1, RFC 8037
// section 3.1, RFC 9864), each with the keys it signs with, as keyFamily names them,
// and where that is said. A key whose "alg" is one of them is for that
// algorithm alone (RFC 7517 section 4.4): on a key of another family or
// curve ("ES256" on an Ed25519 key, "ES384" on a P-256 key, "RS256" on
// an EC key) it contradicts the key, and keytool, which would sign or
// verify with the key by the algorithm the key fits, refuses it. The HMAC
// algorithms are for symmetric keys, which keytool never reads.
var signatureAlgs = map[string]struct{ family, source string }{
	"HS256": {"oct", "RFC 7518 section 3.2"}, "HS384": {"oct", "RFC 7518 section 3.2"}, "HS512": {"oct", "RFC 7518 section 3.2"},
	"RS256": {"RSA", "RFC 7518 section 3.3"}, "RS384": {"RSA", "RFC 7518 section 3.3"}, "RS512": {"RSA", "RFC 7518 section 3.3"},
	"ES256": {"EC P-256", "RFC 7518 section 3.4"}, "ES384": {"EC P-384", "RFC 7518 section 3.4"}, "ES512": {"EC P-521", "RFC 7518 section 3.4"},
	"PS256": {"RSA", "RFC 7518 section 3.5"}, "PS384": {"RSA", "RFC 7518 section 3.5"}, "PS512": {"RSA", "RFC 7518 section 3.5"},
	"EdDSA": {"OKP Ed25519", "RFC 8037 section 3.1"},
	// RFC 9864's fully specified names for EdDSA (JOSE's ECDSA names
	// already are; its ESP256… are COSE's, not JOSE's). keytool reads no
	// Ed448 key, so "Ed448" fits none it reads.
	"Ed25519": {"OKP Ed25519", "RFC 9864"}, "Ed448": {"OKP Ed448", "RFC 9864"},
}

// keyFamily names the kind of k's key as signatureAlgs does: its JWK kty,
// and its curve where the algorithm depends on it.
func keyFamily(k *Key) string {
	switch p := k.public.(type) {
	case *ecdsa.PublicKey:
		return "EC " + p.Curve.Params().Name
	case *rsa.PublicKey:
		return "RSA"
	case ed25519.PublicKey:
		return "OKP Ed25519"
	}
	return "unknown"
}

// checkAlg refuses an "alg" that says the key is for something keytool
// does not do with it: an encryption algorithm (encryptionAlgs), or a
// signature algorithm for another kind of key (signatureAlgs). Any other
// name, one keytool does not know, is left alone.
func checkAlg(k *Key) error {
	raw, ok := k.Attrs[AttrAlg]
	if !ok {
		return nil
	}
	alg, _ := jsonString(raw)
	if encryptionAlgs[alg] {
		return &UseError{Member: AttrAlg, Value: shownValue(raw), key: k,
			Reason: `is an encryption algorithm (RFC 7518 section 4.1): keytool uses a key only for signatures, to sign and verify TLS handshakes`}
	}
	if sa, ok := signatureAlgs[alg]; ok && sa.family != keyFamily(k) {
		return &UseError{Member: AttrAlg, Value: shownValue(raw), key: k,
			Reason: "is for " + sa.family + " keys (" + sa.source + "), not this " + keyFamily(k) +
				" key: the key is marked for an algorithm it cannot be used with (RFC 7517 section 4.4)"}
	}
	return nil
}

// UseError means a key's "use", "key_ops" or "alg" member does not allow
// what keytool does with the key: sign TLS handshakes with a private key,
// verify them with a public one. Reading, it is the Err of a *ParseError,
// which names the file and the member.
type UseError struct {
	Member string // AttrUse, AttrKeyOps or AttrAlg
	Value  string // the member's value as compact JSON, safe to print
	Reason string // why the value is refused

	// key is the key as read, for the readers that neither sign nor
	// verify with it (ParseAnyUse).
	key *Key
}

func (e *UseError) Error() string { return e.Member + " " + e.Value + " " + e.Reason }

// checkUse applies the rule of what a key may be for. Absent, "use" and
// "key_ops" allow any use. Present:
//   - "use" must be "sig";
//   - "key_ops" must be a list of distinct strings among "sign" and
//     "verify" (any other operation would make the key one for something
//     beside signatures too, which RFC 7517 advises against), holding
//     "sign" on a private key, which signs, and "verify" on a public one,
//     which verifies;
//   - both present, they must agree (RFC 7517 section 4.3), which the two
//     rules above make them;
//   - "alg" must not name an encryption algorithm, nor a signature
//     algorithm for another kind of key (checkAlg).
//
// It runs on every key read, once its attributes are set (checkWithKey):
// the fast path never takes a key with any of these members, and both
// decoders' keys meet this one check, so go-jose's keys and its agree
// (FuzzFastKey).
func checkUse(k *Key) (member string, err error) {
	if err := checkAlg(k); err != nil {
		return AttrAlg, err
	}
	useRaw, hasUse := k.Attrs[AttrUse]
	opsRaw, hasOps := k.Attrs[AttrKeyOps]
	if !hasUse && !hasOps {
		return "", nil
	}
	if hasUse {
		if use, ok := jsonString(useRaw); !ok || use != "sig" {
			reason := `is not "sig"`
			if hasOps {
				// However key_ops reads, use and key_ops then disagree,
				// or both say the key is not for signatures.
				reason += ` (and key_ops ` + shownValue(opsRaw) + ` must agree with use: RFC 7517 section 4.3)`
			}
			reason += `: keytool uses a key only for signatures, to sign and verify TLS handshakes (RFC 7517 section 4.2)`
			return AttrUse, &UseError{Member: AttrUse, Value: shownValue(useRaw), Reason: reason, key: k}
		}
	}
	if !hasOps {
		return "", nil
	}
	fail := func(reason string) (string, error) {
		return AttrKeyOps, &UseError{Member: AttrKeyOps, Value: shownValue(opsRaw), Reason: reason, key: k}
	}
	ops, ok := keyOpsList(opsRaw)
	if !ok {
		return fail("is not a list of strings (RFC 7517 section 4.3)")
	}
	for i, op := range ops {
		switch {
		case slices.Contains(ops[:i], op):
			return fail("lists " + strconv.Quote(op) + " twice (RFC 7517 section 4.3)")
		case op != "sign" && op != "verify":
			return fail("lists " + strconv.Quote(op) + `: keytool uses a key only for signatures ("sign", "verify"), and a signing key must be for nothing else`)
		}
	}
	switch {
	case k.IsPrivate() && !slices.Contains(ops, "sign"):
		return fail(`lacks "sign": keytool signs TLS handshakes with a private key`)
	case !k.IsPrivate() && !slices.Contains(ops, "verify"):
		return fail(`lacks "verify": keytool verifies a peer's TLS handshakes with a public key`)
	}
	return "", nil
}

// CheckUse returns the *UseError with which Parse refuses k for what its
// "use", "key_ops" or "alg" member says it is for, or nil when keytool
// may sign or verify with it. A reader that uses no key and so reads
// with ParseAnyUse (keytool show) asks it of each key to say which of
// them keytool would refuse as a trusted key or an identity, and why.
func (k *Key) CheckUse() error {
	if _, err := checkUse(k); err != nil {
		return err
	}
	return nil
}

// keyOpsList decodes a key_ops value: a JSON list of strings, and
// nothing else (not null, not a string).
func keyOpsList(raw []byte) ([]string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false
	}
	if ops, ok := plainList(raw); ok {
		return ops, true
	}
	var ops []string
	if err := json.Unmarshal(raw, &ops); err != nil {
		return nil, false
	}
	return ops, true
}

// jsonString decodes a JSON string value.
func jsonString(raw []byte) (string, bool) {
	if s, ok := plainString(raw); ok {
		return s, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// shownValue is a member's value as an error shows it: compact JSON, with
// what could act on a terminal escaped.
func shownValue(raw []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return termtext.Safe(string(raw))
	}
	return termtext.Safe(buf.String())
}

// publicKeyOps gives the attributes of a private key's public half the
// key_ops its public key has: "sign" becomes "verify", the other half of
// a signature (RFC 7517 section 4.3). A private key marked ["sign"], as
// WebCrypto exports one, so hands out a public half marked ["verify"],
// which checkUse accepts, rather than one marked for signing, which it
// refuses. Any other value is left as it is (checkUse judges it).
func publicKeyOps(a Attributes) {
	raw, ok := a[AttrKeyOps]
	if !ok {
		return
	}
	ops, ok := keyOpsList(raw)
	if !ok || !slices.Contains(ops, "sign") {
		return
	}
	out := make([]string, 0, len(ops))
	for _, op := range ops {
		if op == "sign" {
			op = "verify"
		}
		if !slices.Contains(out, op) {
			out = append(out, op)
		}
	}
	a.SetList(AttrKeyOps, out)
}

// ParseAnyUse reads every key in data as Parse does, but also returns the
// keys Parse refuses only for what their "use", "key_ops" or "alg" member
// says they are for (a *UseError and nothing else). It is for the readers that
// neither sign nor verify with the keys: a list of refused keys, where
// dropping such a key would refuse every key (it is a bad entry of a file
// read whole) or, worse, lose its revocation; and the edits and lookups
// of the files of a store, which must find and keep every key a file
// holds. Any other fault is Parse's error.
func ParseAnyUse(data []byte) ([]*Key, error) { return parseAnyUse(data, "") }

func parseAnyUse(data []byte, file string) ([]*Key, error) {
	keys, err := parse(data, file)
	var ue *UseError
	if err == nil || !errors.As(err, &ue) {
		return keys, err
	}
	// Parse stops at the first bad key: the entry reader reads on.
	entries, serr := parseSet(data, file)
	if serr != nil {
		if errors.As(serr, &ue) && ue.key != nil {
			return []*Key{ue.key}, nil // a single JWK: the file's one entry
		}
		return nil, err
	}
	keys = make([]*Key, 0, len(entries))
	for _, e := range entries {
		if e.Err != nil {
			if !errors.As(e.Err, &ue) || ue.key == nil {
				return nil, e.Err
			}
			keys = append(keys, ue.key)
			continue
		}
		keys = append(keys, e.Key)
	}
	return keys, nil
}
