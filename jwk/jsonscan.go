package jwk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// A small JSON scanner that splits an object into its members without
// decoding their values. It exists because go-jose decodes only the key
// material and drops every other member, while keytool must keep them; a
// second full decode into a map would double the cost of parsing, and
// parsing is on the path of every trust-store reload (see
// docs/benchmarks.md). It also bounds nesting, so hostile input cannot
// exhaust the stack of the decoder behind it.

// maxDepth bounds the nesting of arrays and objects inside a key file.
const maxDepth = 32

type jsonScanner struct {
	data []byte
	pos  int
}

type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string { return e.msg }

func (s *jsonScanner) fail(format string, args ...any) error {
	return &syntaxError{offset: s.pos, msg: "invalid JSON: " + fmt.Sprintf(format, args...)}
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// member is one member of a JSON object: its name, unescaped, and its raw
// value. Both alias the scanned data unless the name had escapes.
type member struct {
	name []byte
	raw  []byte
}

// members reads the object at the current position and appends its
// members to dst. A name that occurs twice is an error (*duplicateError):
// decoders disagree on which copy wins, and an attacker could use that to
// show one key to a reviewer and another to the parser. So is a name that
// differs from another only in case, which Go's encoding/json takes for
// the same name (see names.go).
func (s *jsonScanner) members(depth int, dst []member) ([]member, error) {
	return s.object(depth, true, dst)
}

// object reads the object at the current position; with collect, it
// appends its members to dst and refuses duplicate names.
func (s *jsonScanner) object(depth int, collect bool, dst []member) ([]member, error) {
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '{' {
		return dst, s.fail("expected an object")
	}
	s.pos++
	first := len(dst)
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return dst, nil
	}
	for {
		s.skipSpace()
		nameStart := s.pos
		name, err := s.name()
		if err != nil {
			return dst, err
		}
		if collect {
			for _, m := range dst[first:] {
				if sameFold(m.name, name) {
					return dst, &duplicateError{name: string(name), first: string(m.name), offset: nameStart}
				}
			}
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return dst, s.fail("expected ':' after member %q", name)
		}
		s.pos++
		s.skipSpace()
		start := s.pos
		if err := s.value(depth + 1); err != nil {
			return dst, err
		}
		if collect {
			dst = append(dst, member{name: name, raw: s.data[start:s.pos]})
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return dst, s.fail("unexpected end of input in an object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return dst, nil
		default:
			return dst, s.fail("expected ',' or '}' after member %q", name)
		}
	}
}

// elements calls fn for the raw value of each element of the array at the
// current position.
func (s *jsonScanner) elements(depth int, fn func(i int, raw []byte) error) error {
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '[' {
		return s.fail("expected an array")
	}
	s.pos++
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		s.skipSpace()
		start := s.pos
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if fn != nil {
			if err := fn(i, s.data[start:s.pos]); err != nil {
				return err
			}
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.fail("unexpected end of input in an array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.fail("expected ',' or ']' in an array")
		}
	}
}

// value skips over one JSON value, checking its syntax.
func (s *jsonScanner) value(depth int) error {
	if depth > maxDepth {
		return s.fail("nested deeper than %d levels", maxDepth)
	}
	s.skipSpace()
	if s.pos >= len(s.data) {
		return s.fail("unexpected end of input")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		_, err := s.object(depth, false, nil)
		return err
	case c == '[':
		return s.elements(depth, nil)
	case c == '"':
		_, err := s.strRaw()
		return err
	case c == '-' || ('0' <= c && c <= '9'):
		return s.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
				s.pos += len(lit)
				return nil
			}
		}
		return s.fail("unexpected character %q", c)
	}
}

func (s *jsonScanner) number() error {
	start := s.pos
	if s.data[s.pos] == '-' {
		s.pos++
	}
	digits := func() int {
		n := 0
		for s.pos < len(s.data) && '0' <= s.data[s.pos] && s.data[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if digits() == 0 {
		return s.fail("malformed number")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return s.fail("malformed number")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return s.fail("malformed number")
		}
	}
	if s.data[start] == '0' && s.pos-start > 1 && s.data[start+1] >= '0' && s.data[start+1] <= '9' ||
		s.data[start] == '-' && s.pos-start > 2 && s.data[start+1] == '0' && s.data[start+2] >= '0' && s.data[start+2] <= '9' {
		return s.fail("malformed number (leading zero)")
	}
	return nil
}

// plainByte marks the bytes a JSON string holds as they are: all but the
// quote, the backslash and the control characters.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// strRaw skips a string and returns its raw bytes including the quotes.
func (s *jsonScanner) strRaw() ([]byte, error) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, s.fail("expected a string")
	}
	start := s.pos
	s.pos++
	for s.pos < len(s.data) {
		for s.pos < len(s.data) && plainByte[s.data[s.pos]] {
			s.pos++ // most of a string: no switch per byte
		}
		if s.pos == len(s.data) {
			break
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.data[start:s.pos], nil
		case c == '\\':
			if s.pos+1 >= len(s.data) {
				return nil, s.fail("unterminated string")
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if s.pos+6 > len(s.data) || !isHex4(s.data[s.pos+2:s.pos+6]) {
					return nil, s.fail("malformed \\u escape")
				}
				s.pos += 6
			default:
				return nil, s.fail("malformed escape \\%c", s.data[s.pos+1])
			}
		default: // what plainByte leaves: a control character
			return nil, s.fail("control character in a string")
		}
	}
	return nil, s.fail("unterminated string")
}

// name reads a member name and returns it unescaped, aliasing the data
// when it has no escapes.
func (s *jsonScanner) name() ([]byte, error) {
	raw, err := s.strRaw()
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, s.fail("malformed string")
	}
	return []byte(out), nil
}

// isPlainString reports whether raw is a JSON string without escapes or
// control characters, the common case, whose content is raw[1:len(raw)-1].
func isPlainString(raw []byte) bool {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c == '\\' || c == '"' || c < 0x20 {
			return false
		}
	}
	return true
}

// plainString returns the content of a plain JSON string (isPlainString)
// without decoding it.
func plainString(raw []byte) (string, bool) {
	if !isPlainString(raw) {
		return "", false
	}
	return string(raw[1 : len(raw)-1]), true
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// end checks that nothing but white space follows the value just read.
func (s *jsonScanner) end() error {
	s.skipSpace()
	if s.pos != len(s.data) {
		return s.fail("unexpected data after the end of the JSON value")
	}
	return nil
}

// lineOf returns the 1-based line of byte offset off in data.
func lineOf(data []byte, off int) int {
	off = min(off, len(data))
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}

// jsonErrorLine returns the line of a scanner error, or 0.
func jsonErrorLine(data []byte, err error) int {
	if off, ok := jsonErrorOffset(err); ok {
		return lineOf(data, off)
	}
	return 0
}

// jsonErrorOffset returns the offset of a scanner error in the data
// scanned.
func jsonErrorOffset(err error) (int, bool) {
	var se *syntaxError
	if errors.As(err, &se) {
		return se.offset, true
	}
	var de *duplicateError
	if errors.As(err, &de) {
		return de.offset, true
	}
	return 0, false
}

// duplicateMember returns the name of the member a *duplicateError about
// a case variant is about, and "" for any other error (an exact duplicate
// names the member in its message, as a JSON error).
func duplicateMember(err error) string {
	var de *duplicateError
	if errors.As(err, &de) && de.name != de.first {
		return de.name
	}
	return ""
}
