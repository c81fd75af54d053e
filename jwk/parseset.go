package jwk

import (
	"bytes"
	"errors"
	"strconv"
)

// SetEntry is one entry of a key file as ParseSet reads it: the key, or
// why it could not be read, and where the entry is.
type SetEntry struct {
	Key *Key        // nil when Err is set
	Err *ParseError // why the entry could not be read; its Line and Member say where
	// Index is the entry's place among the file's entries, from 0: the
	// index of a JWK Set member, of a PEM block (blocks that are not keys,
	// such as EC PARAMETERS, not counted), of an OpenSSH key line.
	Index int
	// Line is the entry's first line: a PEM block's BEGIN line, an
	// OpenSSH key's line, or, for a JWK Set member that could not be
	// read, the line of the fault. 0 when not known.
	Line int

	inSet bool // a member of a JWK Set's "keys"
}

// Member returns the entry's member in a JWK Set, "keys[3]", or "" when
// the entry is not a member of one (a single JWK, PEM, OpenSSH). For an
// entry that could not be read, Err.Member names the member at fault
// inside it ("keys[3].x").
func (e SetEntry) Member() string {
	if !e.inSet {
		return ""
	}
	return "keys[" + strconv.Itoa(e.Index) + "]"
}

// ParseSet reads data as Parse does, but a key file's entries one by
// one: a member of a JWK Set's "keys", a PEM block, an OpenSSH line. An
// entry that cannot be read is returned with its Err set, and the
// entries after it are still read, where Parse would refuse the whole
// file. It is for files that grant trust, whose good entries may be kept
// while a bad one is reported: an entry skipped only ever trusts less.
// A list of refused keys must be read with Parse, whole or not at all.
//
// The error returned, a *ParseError, is about the file itself: its
// format cannot be told, it is not well-formed JSON, a single JWK (the
// file's only entry) does not read, or it holds no entry. When no entry
// has Err set, the keys are those Parse returns, in the same order.
func ParseSet(data []byte) ([]SetEntry, error) { return parseSet(data, "") }

func parseSet(data []byte, file string) ([]SetEntry, error) {
	f, err := DetectFormat(data)
	if err != nil {
		return nil, &ParseError{File: file, Err: err}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var entries []SetEntry
	add := func(e SetEntry) error {
		entries = append(entries, e)
		return nil
	}
	switch f {
	case JWK:
		err = parseJSONEntries(data, file, add)
	case PEM:
		err = parsePEMEntries(data, file, add)
	default:
		err = parseSSHEntries(data, file, add)
		if err == nil && !looksLikeSSH(data) && !hasKey(entries) {
			// Text in which no line is a key is not an OpenSSH file
			// with bad lines (as Parse says).
			err = &ParseError{File: file, Err: ErrUnknownFormat}
		}
	}
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			pe = &ParseError{File: file, Err: err}
		}
		return nil, pe
	}
	return entries, nil
}

// hasKey reports whether one of entries was read.
func hasKey(entries []SetEntry) bool {
	for _, e := range entries {
		if e.Key != nil {
			return true
		}
	}
	return false
}
