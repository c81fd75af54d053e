package jwk

import (
	"bytes"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/big"

	jose "github.com/go-jose/go-jose/v4"
)

// RSA keys of more bits than go-jose reads.
//
// go-jose refuses RSA moduli above jose.MaxRSAModulusBits (4096 unless the
// program raises it), a global that keytool, a library, leaves alone:
// importing jwk must not change what go-jose accepts elsewhere in a
// program. keytool reads RSA keys up to MaxRSABits, so it decodes the
// material of the larger ones itself, as go-jose would, and hands go-jose
// the rest.
//
// go-jose also checks the certificate members (x5c, x5u, x5t, x5t#S256)
// against the key; keytool does not repeat that, and so refuses them on
// an RSA key larger than go-jose reads.

// bigRSAKey decodes the key material of an RSA JWK, whose members are ms,
// when its modulus is larger than go-jose reads: an *rsa.PublicKey or an
// *rsa.PrivateKey. For any other JWK it returns nil and no error, and
// go-jose reads the key. On error it returns the member at fault.
func bigRSAKey(kty []byte, ms []member) (any, string, error) {
	if string(kty) != `"RSA"` {
		return nil, "", nil
	}
	n := memberValue(ms, "n")
	// n is a base64url string (checked before). Its decoded length bounds
	// its size: a modulus go-jose reads is left to go-jose, unread, and
	// so is padding, which go-jose refuses with its own message.
	if n == nil || bytes.IndexByte(n, '=') >= 0 || base64.RawURLEncoding.DecodedLen(len(n)-2)*8 <= jose.MaxRSAModulusBits {
		return nil, "", nil
	}
	return rsaFromMembers(ms)
}

// rsaFromMembers decodes an RSA JWK's key material as go-jose does: n and
// e make the public key; d, with p and q, the private key, whose dp, dq
// and qi are optional; "oth" (more than two primes) is not read, and
// such a key fails the check that p·q is n.
func rsaFromMembers(ms []member) (any, string, error) {
	ints := map[string]*big.Int{}
	for _, name := range [...]string{"n", "e", "d", "p", "q", "dp", "dq", "qi"} {
		raw := memberValue(ms, name)
		if raw == nil {
			continue
		}
		v, err := rsaInt(raw)
		if err != nil {
			return nil, name, err
		}
		ints[name] = v
		if name == "n" {
			if bits := ints[name].BitLen(); bits > MaxRSABits {
				return nil, "n", fmt.Errorf("%w: RSA key of %d bits; keytool accepts %d to %d bits", ErrUnsupportedKey, bits, MinRSABits, MaxRSABits)
			}
		}
	}
	for _, name := range [...]string{"x5c", "x5u", "x5t", "x5t#S256"} {
		if memberValue(ms, name) != nil {
			return nil, name, fmt.Errorf("%w: certificate members on an RSA key of more than %d bits: keytool checks them with go-jose, which reads RSA keys of up to %d bits", ErrUnsupportedKey, jose.MaxRSAModulusBits, jose.MaxRSAModulusBits)
		}
	}
	for _, name := range [...]string{"use", "alg"} {
		if raw := memberValue(ms, name); raw != nil {
			if _, err := stringValue(name, raw); err != nil {
				return nil, name, errors.New("not a string")
			}
		}
	}
	n, e := ints["n"], ints["e"]
	if n == nil || e == nil {
		return nil, "", errors.New("invalid RSA key, missing n/e values") // checked before: unreachable
	}
	if !e.IsInt64() || e.Int64() < 2 || e.Int64() > math.MaxInt {
		return nil, "e", errors.New("invalid RSA key, bad e value")
	}
	pub := rsa.PublicKey{N: n, E: int(e.Int64())}
	d := ints["d"]
	if d == nil {
		return &pub, "", nil
	}
	for _, name := range [...]string{"p", "q"} {
		if ints[name] == nil {
			return nil, name, errors.New("missing: an RSA private key needs d, p and q")
		}
	}
	p, q := ints["p"], ints["q"]
	if p.BitLen()+q.BitLen() > n.BitLen()+1 || new(big.Int).Mul(p, q).Cmp(n) != 0 {
		return nil, "", errors.New("invalid RSA private key, p * q != n")
	}
	priv := &rsa.PrivateKey{PublicKey: pub, D: d, Primes: []*big.Int{p, q}}
	priv.Precomputed.Dp, priv.Precomputed.Dq, priv.Precomputed.Qinv = ints["dp"], ints["dq"], ints["qi"]
	return priv, "", nil // NewPrivateKey validates it
}

// rsaInt decodes the value of an RSA JWK's integer member, a JSON string
// of base64url without padding (checked before, but for the padding), as
// go-jose does.
func rsaInt(raw []byte) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(string(raw[1 : len(raw)-1]))
	if err != nil {
		return nil, fmt.Errorf("invalid base64url: %v", err)
	}
	return new(big.Int).SetBytes(b), nil
}

// crtMembers are the CRT members of an RSA private JWK (RFC 7518 section
// 6.3.2), which d, p and q determine.
var crtMembers = [...]string{"dp", "dq", "qi"}

// CRTError means the CRT members of an RSA private JWK (dp, dq, qi) are
// not all present, or one is not the value that the key's d, p and q
// give.
type CRTError struct {
	Member  string // "dp", "dq" or "qi"
	Missing bool   // the member is missing while another CRT member is present
}

func (e *CRTError) Error() string {
	if e.Missing {
		return "missing: an RSA private key with any of dp, dq and qi needs all three (RFC 7518 section 6.3.2)"
	}
	want := map[string]string{"dp": "d mod (p-1)", "dq": "d mod (q-1)", "qi": "the inverse of q mod p"}[e.Member]
	return fmt.Sprintf("%s is not %s: the CRT values do not belong to the key (the file is corrupt or was edited; a signer that used them would make faulty signatures, which give away p and q)", e.Member, want)
}

// checkRSACRT refuses an RSA private JWK whose CRT members are only some
// of dp, dq and qi, or are not the values its d, p and q give, naming the
// member. Signers use dp, dq and qi, not d: a wrong one makes signatures
// that are right modulo one prime and wrong modulo the other, and any such
// signature factors n (the Bellcore attack). Go's rsa.PrivateKey.Validate
// (Go 1.24 on) checks the three when all are set, in messages that do not
// say which is wrong, and ignores them when only some are (it then
// recomputes all three, but leaves the fields as they were, and go-jose
// writes those back): keytool refuses both, before go-jose reads the key.
// Such a file is corrupt or edited, and other readers (OpenSSL, libtrust)
// would sign with what it says; recomputing the values would hide that.
//
// What it cannot decode, or a key whose p and q are not the factors of n,
// it leaves to go-jose, which refuses it with its own message.
func checkRSACRT(kty []byte, ms []member) (string, error) {
	if string(kty) != `"RSA"` || memberValue(ms, "d") == nil {
		return "", nil
	}
	var got [len(crtMembers)]*big.Int
	present := 0
	for i, name := range crtMembers {
		if raw := memberValue(ms, name); raw != nil {
			present++
			v, err := rsaInt(raw)
			if err != nil {
				return "", nil
			}
			got[i] = v
		}
	}
	if present == 0 {
		return "", nil // computed from d, p and q
	}
	if present < len(crtMembers) {
		for i, name := range crtMembers {
			if got[i] == nil {
				return name, &CRTError{Member: name, Missing: true}
			}
		}
	}
	var n, d, p, q *big.Int
	for _, m := range [...]struct {
		name string
		v    **big.Int
	}{{"n", &n}, {"d", &d}, {"p", &p}, {"q", &q}} {
		raw := memberValue(ms, m.name)
		if raw == nil {
			return "", nil
		}
		v, err := rsaInt(raw)
		if err != nil {
			return "", nil
		}
		*m.v = v
	}
	one := big.NewInt(1)
	if p.Cmp(one) <= 0 || q.Cmp(one) <= 0 || new(big.Int).Mul(p, q).Cmp(n) != 0 {
		return "", nil
	}
	qi := new(big.Int).ModInverse(q, p)
	if qi == nil {
		return "", nil
	}
	want := [len(crtMembers)]*big.Int{
		new(big.Int).Mod(d, new(big.Int).Sub(p, one)),
		new(big.Int).Mod(d, new(big.Int).Sub(q, one)),
		qi,
	}
	for i, name := range crtMembers {
		if !sameSecret(got[i], want[i]) {
			return name, &CRTError{Member: name}
		}
	}
	return "", nil
}

// sameSecret reports whether a and b, secret and not negative, are equal,
// in time that depends on their lengths only.
func sameSecret(a, b *big.Int) bool {
	size := (max(a.BitLen(), b.BitLen()) + 7) / 8
	return subtle.ConstantTimeCompare(a.FillBytes(make([]byte, size)), b.FillBytes(make([]byte, size))) == 1
}

// memberValue returns the raw value of the member called name, or nil.
func memberValue(ms []member, name string) []byte {
	for _, m := range ms {
		if string(m.name) == name {
			return m.raw
		}
	}
	return nil
}
