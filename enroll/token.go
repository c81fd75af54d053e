package enroll

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// TokenPrefix starts every token of the current format. The number is the
// format's version: a later format gets another prefix, so that an old
// keytool says "unsupported version" instead of "mangled".
const TokenPrefix = "keytool-join-1:"

// tokenFamily is the part of the prefix shared by all versions.
const tokenFamily = "keytool-join-"

// SecretSize is the size of a token's secret: 256 random bits.
const SecretSize = 32

// maxAddresses bounds the addresses a token may carry.
const maxAddresses = 16

// checksumSize is the number of bytes of SHA-256(payload) appended to the
// payload, to tell a token mangled in copy-paste from a wrong one.
const checksumSize = 4

// Token is what `keytool invite` prints and `keytool join` reads: where to
// connect, which key the server there must present, and the one-time
// secret that proves the client was invited.
//
// Its String method hides the secret, so that a Token printed or logged
// by mistake gives nothing away; Encode gives the string to hand over.
type Token struct {
	Server    [32]byte  // SHA-256 of the server key's DER SubjectPublicKeyInfo
	Addresses []string  // host:port to dial, in order (at least one)
	Secret    [32]byte  // random; the server stores only its SHA-256
	Expires   time.Time // whole seconds, UTC
	Name      string    // the invitation's name, and the client's authorized-keys entry name
}

// ServerFingerprint returns the server key's fingerprint ("SHA256:…").
func (t Token) ServerFingerprint() string { return jwk.FormatFingerprint(t.Server) }

// String describes the token without its secret.
func (t Token) String() string {
	return fmt.Sprintf("%s<secret hidden> (invitation %q, server %s at %s, expires %s)",
		TokenPrefix, t.Name, t.ServerFingerprint(), strings.Join(t.Addresses, ","), t.Expires.UTC().Format(time.RFC3339))
}

// LogValue keeps the secret out of log/slog records.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", t.Name),
		slog.String("server_fingerprint", t.ServerFingerprint()),
		slog.Any("addresses", t.Addresses),
		slog.Time("expires", t.Expires),
	)
}

// newSecret returns SecretSize random bytes.
func newSecret() ([32]byte, error) {
	var s [32]byte
	_, err := rand.Read(s[:])
	return s, err
}

// Encode returns the token as one copy-pasteable string:
//
//	keytool-join-1:<base64url, no padding, of payload ‖ SHA-256(payload)[:4]>
//
// The payload is binary, big-endian:
//
//	[32] server SPKI hash   [32] secret   [8] expiry, Unix seconds
//	[1] len(name), name     [1] number of addresses, then for each: [1] len, address
func (t Token) Encode() (string, error) {
	if err := t.validate(); err != nil {
		return "", err
	}
	return t.encode(), nil
}

// encode is Encode without the checks: what anyone can write, for
// DecodeToken to refuse.
func (t Token) encode() string {
	var p []byte
	p = append(p, t.Server[:]...)
	p = append(p, t.Secret[:]...)
	p = binary.BigEndian.AppendUint64(p, uint64(t.Expires.Unix()))
	p = append(p, byte(len(t.Name)))
	p = append(p, t.Name...)
	p = append(p, byte(len(t.Addresses)))
	for _, a := range t.Addresses {
		p = append(p, byte(len(a)))
		p = append(p, a...)
	}
	sum := sha256.Sum256(p)
	p = append(p, sum[:checksumSize]...)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(p)
}

// validate checks what Encode and DecodeToken both require.
func (t Token) validate() error {
	if err := keydir.CheckName(t.Name); err != nil {
		return err
	}
	if len(t.Name) > 255 {
		return fmt.Errorf("invalid name %q: longer than 255 bytes", t.Name)
	}
	if len(t.Addresses) == 0 {
		return errors.New("a token needs at least one address (host:port)")
	}
	if len(t.Addresses) > maxAddresses {
		return fmt.Errorf("a token holds at most %d addresses", maxAddresses)
	}
	for _, a := range t.Addresses {
		if err := CheckAddress(a); err != nil {
			return err
		}
	}
	if t.Expires.IsZero() {
		return errors.New("a token needs an expiry")
	}
	return nil
}

// CheckAddress accepts the addresses a token may carry: host:port with a
// port from 1 to 65535 and a host name or IP literal (no wildcard, no
// space, no control or invisible character, UTF-8), at most 255 bytes.
// A token comes from anyone, and join prints its addresses before it
// dials them: nothing in them may drive the terminal or reorder the text.
func CheckAddress(addr string) error {
	bad := func(why string) error { return fmt.Errorf("invalid address %q: %s (want host:port)", addr, why) }
	if len(addr) > 255 {
		return bad("longer than 255 bytes")
	}
	if !utf8.ValidString(addr) {
		return bad("not valid UTF-8")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return bad(err.Error())
	}
	if host == "" {
		return bad("no host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return bad("the port must be a number from 1 to 65535")
	}
	for _, r := range host {
		if r <= ' ' || !unicode.IsPrint(r) || strings.ContainsRune("*?!/\\,[]", r) {
			return bad("the host holds a character that cannot be in a host name")
		}
	}
	return nil
}

// Token decoding errors: a *TokenError wraps one of these, so that
// errors.Is tells the cases apart.
var (
	// ErrNotToken: the string does not start with keytool-join-.
	ErrNotToken = errors.New("not a join token")
	// ErrTokenVersion: a keytool-join-N: token of a version this keytool
	// does not read.
	ErrTokenVersion = errors.New("unsupported token version")
	// ErrTokenMangled: the token's characters or checksum are wrong — it
	// was cut short, wrapped, or changed while copied.
	ErrTokenMangled = errors.New("token mangled in copying")
	// ErrTokenMalformed: the checksum holds but the content is invalid —
	// the token was not made by NewInvite.
	ErrTokenMalformed = errors.New("malformed token")
	// ErrTokenName: the token is intact and well formed, but this
	// keytool's name rule (keydir.CheckName) refuses the name it invites
	// for a character not shown as itself or for mixing scripts: most
	// likely a token made before the rule grew stricter (mixed scripts
	// are refused since 2026-12-03), which no server of this version
	// would enroll. TokenError.Err holds the rule's refusal.
	ErrTokenName = errors.New("token's name refused")
)

// TokenError is why DecodeToken refused a string. Kind is one of
// ErrNotToken, ErrTokenVersion, ErrTokenMangled, ErrTokenMalformed and
// ErrTokenName.
type TokenError struct {
	Kind   error
	Detail string
	Err    error // for ErrTokenName, the name rule's refusal (a *keydir.NameScriptError, say)
}

func (e *TokenError) Error() string {
	switch e.Kind {
	case ErrTokenMangled:
		return fmt.Sprintf("enroll: the token was mangled in copying (%s)", e.Detail)
	case ErrNotToken:
		return fmt.Sprintf("enroll: not a join token (%s)", e.Detail)
	case ErrTokenVersion:
		return fmt.Sprintf("enroll: unsupported token version (%s): this version reads %q tokens", e.Detail, TokenPrefix)
	case ErrTokenName:
		return fmt.Sprintf("enroll: the token's name is refused by this keytool's name rule (%s)", e.Detail)
	}
	return fmt.Sprintf("enroll: malformed token (%s)", e.Detail)
}

// Unwrap gives Kind, for errors.Is, and the rule's refusal, if any, for
// errors.As.
func (e *TokenError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// DecodeToken reads a token made by Token.Encode. White space anywhere
// (a token wrapped over lines in a mail or a terminal) is ignored. Any
// other change is detected: by strict base64 decoding or by the checksum,
// and reported as ErrTokenMangled.
func DecodeToken(s string) (Token, error) {
	s = stripSpace(s)
	if err := checkTokenPrefix(s); err != nil {
		return Token{}, err
	}
	payload, err := decodeTokenBody(s[len(TokenPrefix):])
	if err != nil {
		return Token{}, err
	}
	return decodeTokenPayload(payload)
}

// tokenError builds the *TokenError that every DecodeToken failure is.
func tokenError(kind error, format string, args ...any) error {
	return &TokenError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// stripSpace drops the white space a mail or a terminal adds when it wraps
// a token over lines; no other character is dropped, so that any other
// change is still seen as mangling.
func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}

// checkTokenPrefix checks that s starts with TokenPrefix. When it does
// not, it tells a token of another version (ErrTokenVersion) and a token
// whose start was damaged (ErrTokenMangled) from something that is no
// token at all (ErrNotToken), so that the user is told what went wrong.
func checkTokenPrefix(s string) error {
	if strings.HasPrefix(s, TokenPrefix) {
		return nil
	}
	if v, _, ok := strings.Cut(strings.TrimPrefix(s, tokenFamily), ":"); ok && strings.HasPrefix(s, tokenFamily) {
		if _, err := strconv.Atoi(v); err == nil {
			return tokenError(ErrTokenVersion, "version %q", v)
		}
	}
	if strings.HasPrefix(strings.ToLower(s), tokenFamily) || strings.HasPrefix(s, "keytool") {
		return tokenError(ErrTokenMangled, "the %q at its start is damaged", TokenPrefix)
	}
	return tokenError(ErrNotToken, "it does not start with %q", TokenPrefix)
}

// decodeTokenBody turns the base64 after the prefix into the payload and
// checks the payload's checksum. Every failure here is ErrTokenMangled:
// the token was changed in copying, and a foreign character is named with
// its position so that the user can find it.
func decodeTokenBody(body string) ([]byte, error) {
	if i := strings.IndexFunc(body, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}); i >= 0 {
		return nil, tokenError(ErrTokenMangled, "character %q at position %d cannot be in a token", []rune(body[i:])[0], len(TokenPrefix)+i+1)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil {
		return nil, tokenError(ErrTokenMangled, "its length or last character is wrong, as if cut short")
	}
	const minLen = 32 + 32 + 8 + 1 + 1 + 1 + 1 + checksumSize
	if len(raw) < minLen {
		return nil, tokenError(ErrTokenMangled, "too short, as if cut short")
	}
	payload, check := raw[:len(raw)-checksumSize], raw[len(raw)-checksumSize:]
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:checksumSize], check) {
		return nil, tokenError(ErrTokenMangled, "checksum mismatch")
	}
	return payload, nil
}

// decodeTokenPayload reads the fields of a payload whose checksum holds
// (the layout is in Encode's doc comment). Every failure here is
// ErrTokenMalformed: the token arrived intact but was not made by
// NewInvite. The payload is at least 72 bytes long (decodeTokenBody
// checked it).
func decodeTokenPayload(payload []byte) (Token, error) {
	var t Token
	copy(t.Server[:], payload[0:32])
	copy(t.Secret[:], payload[32:64])
	exp := int64(binary.BigEndian.Uint64(payload[64:72]))
	if exp <= 0 || exp > 253402300799 { // 9999-12-31T23:59:59Z
		return Token{}, tokenError(ErrTokenMalformed, "expiry out of range")
	}
	t.Expires = time.Unix(exp, 0).UTC()
	rest := payload[72:]
	// next reads one length-prefixed string off rest.
	next := func() (string, bool) {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return "", false
		}
		v := string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
		return v, true
	}
	name, ok := next()
	if !ok {
		return Token{}, tokenError(ErrTokenMalformed, "truncated name")
	}
	t.Name = name
	if len(rest) < 1 {
		return Token{}, tokenError(ErrTokenMalformed, "no addresses")
	}
	n := int(rest[0])
	rest = rest[1:]
	for i := 0; i < n; i++ {
		a, ok := next()
		if !ok {
			return Token{}, tokenError(ErrTokenMalformed, "truncated address")
		}
		t.Addresses = append(t.Addresses, a)
	}
	if len(rest) > 0 {
		return Token{}, tokenError(ErrTokenMalformed, "%d unexpected bytes at the end", len(rest))
	}
	if err := t.validate(); err != nil {
		var script *keydir.NameScriptError
		var char *keydir.NameCharError
		if errors.As(err, &script) || errors.As(err, &char) {
			// Intact, and well formed under the rule before these two:
			// say which refused it rather than call the token malformed.
			return Token{}, &TokenError{Kind: ErrTokenName, Detail: err.Error(), Err: err}
		}
		return Token{}, tokenError(ErrTokenMalformed, "%v", err)
	}
	return t, nil
}
