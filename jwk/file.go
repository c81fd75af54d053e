package jwk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/trustfile"
)

// MaxFileSize bounds what ReadFile reads. A JWK Set of 100,000 keys is
// about 20 MiB; anything much larger is not a key file.
const MaxFileSize = trustfile.MaxSize

// ReadFile reads every key in the file at path. A file holding a private
// key must not be readable by group or others (see PermissionError), as
// OpenSSH requires of its identity files.
func ReadFile(path string) ([]*Key, error) { return readFile(path, parse) }

// ReadFileAnyUse is ReadFile reading as ParseAnyUse does: for the
// commands that neither sign nor verify with the keys (revoking them).
func ReadFileAnyUse(path string) ([]*Key, error) { return readFile(path, parseAnyUse) }

func readFile(path string, parse func([]byte, string) ([]*Key, error)) ([]*Key, error) {
	keys, fi, err := readKeyFile(path, parse)
	if err != nil {
		return nil, err
	}
	return keys, checkPrivateMode(path, keys, fi)
}

// checkPrivateMode refuses a file holding a private key that group or
// others may read (fi is the file's own information, from the open file).
func checkPrivateMode(path string, keys []*Key, fi fs.FileInfo) error {
	for _, k := range keys {
		if k.IsPrivate() && fi.Mode().Perm()&0o077 != 0 {
			return &PermissionError{File: path, Mode: uint32(fi.Mode().Perm())}
		}
	}
	return nil
}

// ReadPublicKeys reads the keys in the file at path as ReadFile does and
// returns their public halves, without ReadFile's check of who may read
// the file: it is for naming keys (type, fingerprint), which tells nothing
// secret even of a private key others can read.
func ReadPublicKeys(path string) ([]*Key, error) {
	keys, _, err := readKeyFile(path, parse)
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		keys[i] = k.PublicKey()
	}
	return keys, nil
}

// readKeyFile reads and parses the file at path through the one reader of
// trust files: never blocking on a FIFO or device, up to MaxFileSize.
func readKeyFile(path string, parse func([]byte, string) ([]*Key, error)) ([]*Key, fs.FileInfo, error) {
	data, fi, err := trustfile.Read(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, nil, err
		}
		return nil, nil, &ParseError{File: path, Err: err}
	}
	keys, err := parse(data, path)
	if err != nil {
		return nil, nil, err
	}
	return keys, fi, nil
}

// ReadPrivateKeyFile reads the single private key in the file at path.
func ReadPrivateKeyFile(path string) (*Key, error) {
	keys, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return onePrivate(path, keys)
}

// ParsePrivateKeyFile is ReadPrivateKeyFile of a file the caller has read
// itself: data is its content and fi its information, taken from the same
// open file (trustfile.Rule.ReadFile, which checks the file on the way).
// It parses what was checked, where reading the file again would load
// whatever was put in its place meanwhile.
func ParsePrivateKeyFile(path string, data []byte, fi fs.FileInfo) (*Key, error) {
	keys, err := parse(data, path)
	if err != nil {
		return nil, err
	}
	if err := checkPrivateMode(path, keys, fi); err != nil {
		return nil, err
	}
	return onePrivate(path, keys)
}

// onePrivate is the key of a file read as an identity: its single key,
// which must be private.
func onePrivate(path string, keys []*Key) (*Key, error) {
	if len(keys) != 1 || !keys[0].IsPrivate() {
		e := &NotPrivateKeyError{Keys: len(keys)}
		if len(keys) == 1 {
			e.Public = keys[0].Fingerprint()
		}
		return nil, &ParseError{File: path, Err: e}
	}
	return keys[0], nil
}

// NotPrivateKeyError means a file read as an identity holds no single
// private key: a public key (most often the public half given for the
// key, ssh's id_ed25519.pub for id_ed25519), or several keys.
type NotPrivateKeyError struct {
	Keys   int    // how many keys the file holds
	Public string // the fingerprint of its one key when that is public; "" otherwise
}

func (e *NotPrivateKeyError) Error() string {
	if e.Public != "" {
		return "holds a public key (" + e.Public + "), not a private key"
	}
	return fmt.Sprintf("holds %d keys, not exactly one private key", e.Keys)
}

// IdentityFileNames returns the file names an identity may have in a home
// directory, in the order FindIdentity looks for them (the home's layout,
// defined once in internal/home). The slice is the caller's own.
func IdentityFileNames() []string { return home.IdentityNames() }

// PublicFileNames returns the file names the public half of an identity
// may have in a home directory. The slice is the caller's own.
func PublicFileNames() []string { return home.PublicNames() }

// NoIdentityError means a home directory holds no identity (or is not
// there): errors.Is(err, fs.ErrNotExist) holds for it, as for a missing
// file. Make one with keytool gen, or tlsbridge.LoadOrGenerateHomeIdentity.
type NoIdentityError struct{ Home string }

func (e *NoIdentityError) Error() string {
	where := e.Home
	if where == "" {
		where = "the current directory" // home.Dir("")'s files are relative
	}
	return fmt.Sprintf("jwk: no identity in %s (looked for %s)", where, strings.Join(home.IdentityNames(), ", "))
}

// Unwrap is fs.ErrNotExist.
func (e *NoIdentityError) Unwrap() error { return fs.ErrNotExist }

// FindIdentity returns the path of the identity in home: the single one of
// key.json, key.jwk and key.pem that exists. None is a *NoIdentityError;
// several is an error naming them, because picking one would be a guess.
func FindIdentity(dir string) (string, error) {
	found, err := findOne(dir, home.Dir(dir).Identity())
	if err == nil && found == "" {
		return "", &NoIdentityError{Home: dir}
	}
	return found, err
}

// FindNextKey returns the path of the next key (key.next.*, made to
// become the identity by a rotation) in a home directory: "" when there
// is none, *SeveralIdentitiesError when there are several.
func FindNextKey(dir string) (string, error) {
	return findOne(dir, home.Dir(dir).Next())
}

// findOne returns the one of paths that exists, "" if none does.
func findOne(dir string, paths []string) (string, error) {
	var found []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			found = append(found, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return "", &SeveralIdentitiesError{Home: dir, Files: found}
}

// SeveralIdentitiesError means a home holds more than one identity file:
// picking one would be a guess.
type SeveralIdentitiesError struct {
	Home  string
	Files []string
}

func (e *SeveralIdentitiesError) Error() string {
	return fmt.Sprintf("jwk: several identities in %s: %s", e.Home, strings.Join(e.Files, ", "))
}

// WriteMode says what writing a key file does when the file exists.
type WriteMode uint8

const (
	// CreateNew leaves an existing file alone: the write fails with an
	// error that satisfies errors.Is(err, fs.ErrExist).
	CreateNew WriteMode = iota
	// Overwrite replaces an existing file, atomically.
	Overwrite
)

func (m WriteMode) String() string {
	switch m {
	case CreateNew:
		return "CreateNew"
	case Overwrite:
		return "Overwrite"
	}
	return "WriteMode(" + strconv.Itoa(int(m)) + ")"
}

// WritePrivateKeyFile writes k, with its private members, to path with
// mode 0600, atomically; mode says what happens to an existing file.
// Once written, it removes the temporary files that earlier writes of path
// left behind when killed (atomicfile.RemoveStale): each a copy of a
// private key, maybe one since rotated away.
func WritePrivateKeyFile(path string, k *Key, f Format, mode WriteMode) error {
	data, err := k.MarshalPrivate(f)
	if err != nil {
		return err
	}
	if err := write(path, data, 0o600, mode); err != nil {
		return err
	}
	atomicfile.RemoveStale(path)
	return nil
}

// WritePublicKeyFile writes the public half of k (PublicHalf) to path with
// mode 0644, atomically; mode says what happens to an existing file.
func WritePublicKeyFile(path string, k *Key, f Format, mode WriteMode) error {
	data, err := k.PublicHalf().MarshalPublic(f)
	if err != nil {
		return err
	}
	return write(path, data, 0o644, mode)
}

func write(path string, data []byte, perm fs.FileMode, mode WriteMode) error {
	switch mode {
	case CreateNew:
		return atomicfile.Create(path, data, perm)
	case Overwrite:
		return atomicfile.Write(path, data, perm)
	}
	return fmt.Errorf("writing %s: unknown %v", path, mode)
}
