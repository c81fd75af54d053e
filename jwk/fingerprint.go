package jwk

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Fingerprint is a key name typed by a user, in any of the forms keytool
// prints or that other tools print for the same key:
//
//	SHA256:UblEzfpUTUwyc6pr81BiWn3VO7tqcXIydPU4sZogd2A       keytool, or ssh-keygen -l
//	KG4U:JTP2:KRGU:YMTT:VJV7:GUDC:LJ65:KO53:NJYX:EMTU:6U4L:DGRA  Docker/libtrust key ID
//	sha256//UblEzfpUTUwyc6pr81BiWn3VO7tqcXIydPU4sZogd2A=     curl --pinnedpubkey
//	51b944cdfa544d4c…  or  51:B9:44:CD:…                     hex of the SPKI hash
//	<43 base64url characters>                                RFC 7638 thumbprint
//
// All but the thumbprint are the SHA-256 of the DER SubjectPublicKeyInfo,
// or a prefix of it; but a SHA256:… fingerprint has the same form as
// ssh-keygen's, the SHA-256 of the key's SSH wire encoding (see
// Key.SSHFingerprint), and so names the key whose hash it is by either.
// Use Match to compare a key against it.
type Fingerprint struct {
	input   string
	spki    []byte // the SPKI hash, or a prefix of it (key ID: 30 bytes)
	thumb   []byte // an RFC 7638 thumbprint, when the input can be one
	isKeyID bool
	ssh     bool // spki may be ssh-keygen's hash instead (SHA256:…)
}

// String returns the fingerprint as the user typed it.
func (f Fingerprint) String() string { return f.input }

// ParseFingerprint reads a fingerprint in any form Fingerprint lists.
func ParseFingerprint(s string) (Fingerprint, error) {
	s = strings.TrimSpace(s)
	f := Fingerprint{input: s}
	bad := func(why string) (Fingerprint, error) {
		return Fingerprint{}, fmt.Errorf("%q is not a key fingerprint: %s (expected SHA256:…, a key ID like ABCD:EFGH:…, sha256//… or 64 hex digits)", s, why)
	}
	switch {
	case strings.HasPrefix(s, "SHA256:"), strings.HasPrefix(s, "sha256:"):
		b, err := decodeB64(s[len("SHA256:"):])
		if err != nil || len(b) != 32 {
			return bad("the part after SHA256: is not a base64 SHA-256 in its canonical spelling")
		}
		f.spki, f.ssh = b, true
	case strings.HasPrefix(s, "sha256//"):
		b, err := decodeB64(s[len("sha256//"):])
		if err != nil || len(b) != 32 {
			return bad("the part after sha256// is not a base64 SHA-256 in its canonical spelling")
		}
		f.spki = b
	case isLibtrustKeyID(strings.ToUpper(s)):
		b, err := base32.StdEncoding.DecodeString(strings.ReplaceAll(strings.ToUpper(s), ":", ""))
		if err != nil || len(b) != 30 {
			return bad("malformed key ID")
		}
		f.spki, f.isKeyID = b, true
	default:
		h := strings.ReplaceAll(s, ":", "")
		if b, err := hex.DecodeString(h); err == nil && len(b) == 32 {
			f.spki = b
			break
		}
		if strings.Contains(s, ":") {
			return bad("unrecognised form")
		}
		if b, err := decodeCanonical(base64.RawURLEncoding, s); err == nil && len(b) == 32 {
			f.thumb = b
		}
		if b, err := decodeB64(s); err == nil && len(b) == 32 {
			f.spki = b
		}
		if f.thumb == nil && f.spki == nil {
			return bad("unrecognised form")
		}
	}
	return f, nil
}

// decodeB64 decodes standard base64 with or without its padding.
func decodeB64(s string) ([]byte, error) {
	if strings.HasSuffix(s, "=") {
		return decodeCanonical(base64.StdEncoding, s)
	}
	return decodeCanonical(base64.RawStdEncoding, s)
}

// decodeCanonical decodes s only if it is enc's one spelling of its bytes:
// the decoders also take unused low bits set in the last character and
// ignore line breaks, and then several strings would name the same 32
// bytes, and a fingerprint compared as text (in a file, a log, by a
// person) with the one keytool prints would differ from it while still
// matching the key.
func decodeCanonical(enc *base64.Encoding, s string) ([]byte, error) {
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if enc.EncodeToString(b) != s {
		return nil, errors.New("not the canonical base64 of its bytes")
	}
	return b, nil
}

// Match reports whether k is the key f names: by its SPKI hash, key ID or
// thumbprint, or for a SHA256:… input by ssh-keygen's fingerprint too
// (MatchSums of k's Sums: the one rule, whether a key is matched once or
// its hashes kept for many fingerprints).
func (f Fingerprint) Match(k *Key) bool { return f.MatchSums(k.Sums()) }

// Sums are the hashes a Fingerprint may name a key by, each computed
// once (Key.Sums): for matching one key against many fingerprints, where
// Match computes them again for each.
type Sums struct {
	spki, ssh, thumb [32]byte
	hasSSH, hasThumb bool
}

// Sums returns the hashes MatchSums compares: the SPKI hash, the
// thumbprint, and ssh-keygen's hash where the key has an SSH encoding.
func (k *Key) Sums() Sums {
	s := Sums{spki: k.SPKIHash()}
	s.ssh, s.hasSSH = k.sshHash()
	if t, err := base64.RawURLEncoding.DecodeString(k.Thumbprint()); err == nil && len(t) == len(s.thumb) {
		copy(s.thumb[:], t)
		s.hasThumb = true
	}
	return s
}

// MatchSums reports whether the key whose hashes are s is the key f
// names (Match).
func (f Fingerprint) MatchSums(s Sums) bool {
	if f.spki != nil {
		if f.isKeyID && bytes.Equal(s.spki[:30], f.spki) || !f.isKeyID && bytes.Equal(s.spki[:], f.spki) {
			return true
		}
	}
	if f.ssh && s.hasSSH && bytes.Equal(s.ssh[:], f.spki) {
		return true
	}
	return f.thumb != nil && s.hasThumb && bytes.Equal(s.thumb[:], f.thumb)
}

// SPKIPrefix returns the SPKI hash the fingerprint names, or the part of
// it a key ID names (its first 30 bytes), or nil. The fingerprint may name
// a key by another hash too (Match tells).
func (f Fingerprint) SPKIPrefix() []byte { return bytes.Clone(f.spki) }

// SPKIHash returns the full SPKI hash f names, if the input held one:
// SHA256:…, sha256//… or hex. A key ID holds only a prefix, and a bare
// base64 string may be a thumbprint instead.
//
// A SHA256:… input may instead be ssh-keygen's fingerprint of another key
// (see Key.SSHFingerprint), which no SPKI hash shows: a caller that looks
// keys up by this hash must, when it finds none, fall back to Match on
// the keys themselves.
func (f Fingerprint) SPKIHash() (sum [32]byte, ok bool) {
	if f.isKeyID || len(f.spki) != 32 || f.thumb != nil {
		return sum, false
	}
	copy(sum[:], f.spki)
	return sum, true
}

// FingerprintsIn returns those of queries that are fingerprints (a
// command's --remove arguments, each a name or address or a fingerprint),
// in their order.
func FingerprintsIn(queries []string) []Fingerprint {
	var fps []Fingerprint
	for _, q := range queries {
		if fp, err := ParseFingerprint(q); err == nil {
			fps = append(fps, fp)
		}
	}
	return fps
}

// A FingerprintSet is many fingerprints looked up together: which of them
// name a key, in a few map lookups, where MatchSums of each walks them
// all — what a removal of thousands of keys asks of every key it reads
// (docs/design.md, "Stores: one lifecycle, one matcher"). A fingerprint
// is known by its index in the list the set was made from.
type FingerprintSet struct {
	full  map[[32]byte][]int // SPKIHash
	keyID map[[30]byte][]int
	spki  map[[32]byte][]int // every 32-byte SPKI hash, full or not (a bare base64 string)
	ssh   map[[32]byte][]int
	thumb map[[32]byte][]int
}

// NewFingerprintSet returns the set of fps.
func NewFingerprintSet(fps []Fingerprint) *FingerprintSet {
	s := &FingerprintSet{full: map[[32]byte][]int{}, keyID: map[[30]byte][]int{}, spki: map[[32]byte][]int{}, ssh: map[[32]byte][]int{}, thumb: map[[32]byte][]int{}}
	for i, f := range fps {
		if sum, ok := f.SPKIHash(); ok {
			s.full[sum] = append(s.full[sum], i)
		}
		switch {
		case f.isKeyID:
			s.keyID[[30]byte(f.spki)] = append(s.keyID[[30]byte(f.spki)], i)
		case len(f.spki) == 32:
			s.spki[[32]byte(f.spki)] = append(s.spki[[32]byte(f.spki)], i)
			if f.ssh {
				s.ssh[[32]byte(f.spki)] = append(s.ssh[[32]byte(f.spki)], i)
			}
		}
		if len(f.thumb) == 32 {
			s.thumb[[32]byte(f.thumb)] = append(s.thumb[[32]byte(f.thumb)], i)
		}
	}
	return s
}

// BySPKI appends to dst the fingerprints that name the key whose SPKI
// hash is h by that hash in full (SPKIHash) or by its key ID: the forms
// a key's SPKI hash alone shows, without the key. In increasing order,
// each once.
func (s *FingerprintSet) BySPKI(dst []int, h [32]byte) []int {
	return merged(dst, s.full[h], s.keyID[[30]byte(h[:30])])
}

// Matching appends to dst the fingerprints that name the key whose
// hashes are sums (MatchSums of each). In increasing order, each once.
func (s *FingerprintSet) Matching(dst []int, sums Sums) []int {
	var ssh, thumb []int
	if sums.hasSSH {
		ssh = s.ssh[sums.ssh]
	}
	if sums.hasThumb {
		thumb = s.thumb[sums.thumb]
	}
	return merged(dst, s.spki[sums.spki], s.keyID[[30]byte(sums.spki[:30])], ssh, thumb)
}

// merged appends to dst the indices of lists, each list increasing, in
// increasing order and each once.
func merged(dst []int, lists ...[]int) []int {
	n := len(dst)
	for _, l := range lists {
		dst = append(dst, l...)
	}
	slices.Sort(dst[n:])
	return append(dst[:n], slices.Compact(dst[n:])...)
}
