package jwk

import (
	"bytes"
	"crypto/rsa"
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
		b, err := base64.RawURLEncoding.DecodeString(string(raw[1 : len(raw)-1]))
		if err != nil {
			return nil, name, fmt.Errorf("invalid base64url: %v", err)
		}
		ints[name] = new(big.Int).SetBytes(b)
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

// memberValue returns the raw value of the member called name, or nil.
func memberValue(ms []member, name string) []byte {
	for _, m := range ms {
		if string(m.name) == name {
			return m.raw
		}
	}
	return nil
}
