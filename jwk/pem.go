package jwk

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/keytool/keytool/internal/termtext"
)

// pemSkipped are block types that may sit beside keys without being keys:
// `openssl ecparam -genkey` writes EC PARAMETERS before the key.
var pemSkipped = map[string]bool{"EC PARAMETERS": true}

// pemHeadersIgnored are RFC 1421 headers that describe encryption, not the
// key, and so are not attributes.
var pemHeadersIgnored = map[string]bool{"Proc-Type": true, "DEK-Info": true}

// parsePEM reads every block of a PEM file or bundle.
func parsePEM(data []byte, file string) ([]*Key, error) {
	return allKeys(data, file, parsePEMEntries)
}

// parsePEMEntries calls add for each block of a PEM file or bundle that
// is not skipped (pemSkipped), read or not; an error add returns ends the
// reading and is returned. After a malformed block (no END line, bad
// base64), whose end cannot be told, reading goes on at the next BEGIN
// line. A file without a block is ErrNoKey.
func parsePEMEntries(data []byte, file string, add func(SetEntry) error) error {
	n := 0
	rest := data
	line := 1
	for {
		begin := bytes.Index(rest, []byte("-----BEGIN "))
		if begin < 0 {
			break
		}
		line += bytes.Count(rest[:begin], []byte{'\n'})
		block, after := pem.Decode(rest[begin:])
		consumed := len(rest[begin:]) - len(after)
		// pem.Decode skips a malformed block and returns the next good one:
		// a second BEGIN in what it consumed means the block at begin is bad.
		if block == nil || bytes.Contains(rest[begin+1:begin+consumed], []byte("-----BEGIN ")) {
			n++
			err := &ParseError{File: file, Line: line, Err: errors.New("malformed or truncated PEM block (no matching END line, or bad base64)")}
			if err := add(SetEntry{Index: n - 1, Line: line, Err: err}); err != nil {
				return err
			}
			next, ok := nextGoodPEM(rest[begin:], consumed, block != nil)
			if !ok {
				break // no block after the malformed one(s) can be read
			}
			line += bytes.Count(rest[begin:begin+next], []byte{'\n'})
			rest = rest[begin+next:]
			continue
		}
		blockLine := line
		text := rest[begin : begin+consumed]
		line += bytes.Count(text, []byte{'\n'})
		rest = after
		if pemSkipped[block.Type] {
			if n, err := checkPEMHeaderNames(text, blockLine); err != nil {
				return &ParseError{File: file, Line: n, Err: err}
			}
			continue
		}
		n++
		e := pemEntry(file, block, text, blockLine)
		e.Index = n - 1
		if err := add(e); err != nil {
			return err
		}
	}
	if n == 0 {
		return &ParseError{File: file, Err: ErrNoKey}
	}
	return nil
}

// nextGoodPEM returns where, in data (which starts with a malformed PEM
// block), the good block that pem.Decode read after it begins: the last
// BEGIN line in the consumed bytes, checked to decode to the same block
// end. One entry then stands for the whole malformed stretch, and
// reading goes on in time linear in the file, never decoding the rest
// again from each BEGIN line inside it. ok is false when there is no
// such block (decoded false), or it cannot be found that way.
func nextGoodPEM(data []byte, consumed int, decoded bool) (next int, ok bool) {
	if !decoded {
		return 0, false
	}
	next = bytes.LastIndex(data[:consumed], []byte("-----BEGIN "))
	if next <= 0 {
		return 0, false
	}
	if b, after := pem.Decode(data[next:]); b == nil || len(after) != len(data)-consumed {
		return 0, false
	}
	return next, true
}

// pemEntry reads one PEM block, whose text (from its BEGIN line on) starts
// on line blockLine of file.
func pemEntry(file string, block *pem.Block, text []byte, blockLine int) SetEntry {
	if n, err := checkPEMHeaderNames(text, blockLine); err != nil {
		k, _ := parsePEMBlock(block) // for its key alone (ParseError.Key)
		return SetEntry{Line: blockLine, Err: &ParseError{File: file, Line: n, Err: err, Key: spkiOf(k)}}
	}
	k, err := parsePEMBlock(block)
	if err != nil {
		return SetEntry{Line: blockLine, Err: &ParseError{File: file, Line: blockLine, Err: err, Key: spkiOf(k)}}
	}
	if member, err := checkAttrs(k); err != nil {
		return SetEntry{Line: blockLine, Err: &ParseError{File: file, Line: blockLine, Member: member, Err: err, Key: spkiOf(k)}}
	}
	return SetEntry{Key: k, Line: blockLine}
}

// checkPEMHeaderNames refuses a block, its text from the BEGIN line on,
// in which two headers have the same name, exactly or but for case:
// encoding/pem keeps only the last of two equal names, and two names that
// differ only in case would become attributes that Go's encoding/json
// takes for one (see names.go). The BEGIN line is line first of the file;
// on error, checkPEMHeaderNames also returns the line of the second header.
//
// The headers are the lines after the BEGIN line up to the first without
// a colon, their names trimmed of spaces, as encoding/pem reads them.
func checkPEMHeaderNames(text []byte, first int) (int, error) {
	type header struct {
		name []byte
		line int
	}
	var buf [8]header // most blocks have fewer headers: no allocation
	seen := buf[:0]
	_, rest := pemLine(text) // the BEGIN line
	for n := first + 1; len(rest) > 0; n++ {
		var l []byte
		l, rest = pemLine(rest)
		key, _, ok := bytes.Cut(l, []byte{':'})
		if !ok {
			break
		}
		name := bytes.TrimSpace(key)
		for _, h := range seen {
			switch {
			case bytes.Equal(h.name, name):
				return n, fmt.Errorf("PEM header %q appears twice, on lines %d and %d (a PEM reader keeps only the last)", name, h.line, n)
			case bytes.EqualFold(h.name, name) && utf8.Valid(h.name) && utf8.Valid(name):
				// (A name that is not UTF-8 is refused as such, later.)
				return n, fmt.Errorf("PEM header %q: duplicate of header %q on line %d (names differ only in case; Go's encoding/json would read one as the other)", name, h.name, h.line)
			}
		}
		seen = append(seen, header{name, n})
	}
	return 0, nil
}

// pemLine is encoding/pem's getLine: the line at the start of data without
// its line ending and trailing spaces or tabs, and the data after it.
func pemLine(data []byte) (line, rest []byte) {
	i := bytes.IndexByte(data, '\n')
	var j int
	if i < 0 {
		i = len(data)
		j = i
	} else {
		j = i + 1
		if i > 0 && data[i-1] == '\r' {
			i--
		}
	}
	return bytes.TrimRight(data[0:i], " \t"), data[j:]
}

// parsePEMBlock reads the key of one PEM block, its headers as
// attributes. On an error in a header it returns the key too, whose block
// read (ParseError.Key); else nil.
func parsePEMBlock(b *pem.Block) (*Key, error) {
	if strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") || b.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, fmt.Errorf("%s block: %w (decrypt a copy first: openssl pkey -in FILE -out plain.pem)", termtext.Safe(b.Type), ErrEncrypted)
	}
	var (
		pub  crypto.PublicKey
		priv any
		err  error
	)
	switch b.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
			pub = cert.PublicKey
		}
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "OPENSSH PRIVATE KEY":
		priv, err = ssh.ParseRawPrivateKey(pem.EncodeToMemory(b))
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("%w (decrypt a copy first: cp FILE plain && ssh-keygen -p -N '' -f plain)", ErrEncrypted)
		}
	default:
		return nil, fmt.Errorf("%w: PEM block %q (keytool reads PUBLIC KEY, PRIVATE KEY, EC PRIVATE KEY, RSA PRIVATE KEY, RSA PUBLIC KEY, OPENSSH PRIVATE KEY and CERTIFICATE)", ErrUnsupportedKey, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s block: %v", b.Type, err)
	}
	var k *Key
	if priv != nil {
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%w: the %s block holds a key that cannot sign (X25519 or another key-agreement key)", ErrUnsupportedKey, b.Type)
		}
		k, err = NewPrivateKey(signer)
	} else {
		k, err = NewPublicKey(pub)
	}
	if err != nil {
		return nil, fmt.Errorf("%s block: %w", b.Type, err)
	}
	h := maps.Clone(b.Headers)
	for name := range pemHeadersIgnored {
		delete(h, name)
	}
	for name, v := range h {
		// JSON would turn invalid bytes into U+FFFD: the attribute would
		// change name or value on rewrite, and two names could collide.
		if !utf8.ValidString(name) || !utf8.ValidString(v) {
			return k, fmt.Errorf("PEM header %q is not valid UTF-8", name)
		}
		if err := checkPEMHeader(name, v); err != nil {
			return k, err
		}
	}
	k.Attrs = attrsFromPEMHeaders(h)
	return k, nil
}

// marshalPEM writes one key as a PEM block: PUBLIC KEY (PKIX) or, when
// private is true, PRIVATE KEY (PKCS #8). Attributes become headers.
//
// OpenSSL refuses PEM blocks with headers other than the RFC 1421
// encryption ones, so a key with attributes is readable by keytool, Docker
// and libtrust but not by `openssl pkey`; `keytool pub -f pem` of a key
// without attributes is plain PKIX.
func (k *Key) marshalPEM(private bool) ([]byte, error) {
	h, err := k.Attrs.pemHeaders()
	if err != nil {
		return nil, err
	}
	b := &pem.Block{Type: "PUBLIC KEY", Bytes: k.spki, Headers: h}
	if private {
		if k.private == nil {
			return nil, errors.New("not a private key")
		}
		der, err := x509.MarshalPKCS8PrivateKey(k.private)
		if err != nil {
			return nil, err
		}
		b.Type, b.Bytes = "PRIVATE KEY", der
	}
	for _, name := range slices.Collect(maps.Keys(b.Headers)) {
		if isMaterial(name) {
			delete(b.Headers, name)
		}
	}
	return pem.EncodeToMemory(b), nil
}
