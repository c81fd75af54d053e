package jwk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Format is an encoding of keys.
type Format string

const (
	JWK     Format = "jwk"     // a JWK, or a JWK Set of several keys
	PEM     Format = "pem"     // PEM blocks, one per key
	OpenSSH Format = "openssh" // authorized_keys lines (read only)
)

// ParseFormat returns the writable Format named s ("jwk", "json" or "pem").
func ParseFormat(s string) (Format, error) {
	switch s {
	case "jwk", "json":
		return JWK, nil
	case "pem":
		return PEM, nil
	}
	return "", fmt.Errorf("unknown format %q: use jwk or pem", s)
}

// Ext returns the file extension keytool writes for f: ".json" or ".pem".
func (f Format) Ext() string {
	if f == PEM {
		return ".pem"
	}
	return ".json"
}

// DetectFormat tells the format of data from its content: JSON starts with
// '{', PEM holds a "-----BEGIN " line, and anything else that is text is
// tried as OpenSSH key lines. The file name plays no part.
func DetectFormat(data []byte) (Format, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return "", ErrNoKey
	case trimmed[0] == '{':
		return JWK, nil
	case bytes.Contains(data, []byte("-----BEGIN ")):
		return PEM, nil
	case bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data):
		return "", fmt.Errorf("%w (binary data)", ErrUnknownFormat)
	}
	return OpenSSH, nil
}

// Parse reads every key in data, in any format DetectFormat recognises.
// Errors are *ParseError values that say where and why; a file with one bad
// key is refused whole.
func Parse(data []byte) ([]*Key, error) { return parse(data, "") }

func parse(data []byte, file string) ([]*Key, error) {
	f, err := DetectFormat(data)
	if err != nil {
		return nil, &ParseError{File: file, Err: err}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	switch f {
	case JWK:
		return parseJSON(data, file)
	case PEM:
		return parsePEM(data, file)
	default:
		keys, err := parseSSH(data, file)
		var pe *ParseError
		if errors.As(err, &pe) && pe.Line > 0 && !looksLikeSSH(data) {
			return nil, &ParseError{File: file, Err: ErrUnknownFormat}
		}
		return keys, err
	}
}

// looksLikeSSH reports whether the first significant line of data names an
// OpenSSH key type, so that arbitrary text is reported as an unknown format
// rather than as a broken OpenSSH line.
func looksLikeSSH(data []byte) bool {
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		for _, p := range [][]byte{[]byte("ssh-"), []byte("ecdsa-sha2-"), []byte("sk-"), []byte("from=")} {
			if bytes.Contains(line, p) {
				return true
			}
		}
		return false
	}
	return false
}

// ParseOne reads exactly one key from data.
func ParseOne(data []byte) (*Key, error) {
	keys, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if len(keys) != 1 {
		return nil, &ParseError{Err: fmt.Errorf("%d keys found where one was expected", len(keys))}
	}
	return keys[0], nil
}

// MarshalPublic encodes the public half of k with its attributes. It never
// emits private members, whatever k holds.
func (k *Key) MarshalPublic(f Format) ([]byte, error) { return k.marshal(f, false) }

// MarshalPrivate encodes k with its private members. It fails for a public
// key.
func (k *Key) MarshalPrivate(f Format) ([]byte, error) { return k.marshal(f, true) }

func (k *Key) marshal(f Format, private bool) ([]byte, error) {
	switch f {
	case JWK:
		out, err := k.marshalJWK(private)
		if err != nil {
			return nil, err
		}
		return indentJSON(out), nil
	case PEM:
		return k.marshalPEM(private)
	}
	return nil, fmt.Errorf("cannot write keys as %q", f)
}

// MarshalPublicSet encodes the public halves of keys as one file: a JWK Set
// or a PEM bundle.
func MarshalPublicSet(keys []*Key, f Format) ([]byte, error) {
	var out []byte
	switch f {
	case JWK:
		out = append(out, `{"keys":[`...)
		for i, k := range keys {
			if i > 0 {
				out = append(out, ',')
			}
			b, err := k.marshalJWK(false)
			if err != nil {
				return nil, err
			}
			out = append(out, b...)
		}
		return indentJSON(append(out, "]}"...)), nil
	case PEM:
		for _, k := range keys {
			b, err := k.marshalPEM(false)
			if err != nil {
				return nil, err
			}
			out = append(out, b...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot write keys as %q", f)
}

func indentJSON(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return append(b, '\n')
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}
