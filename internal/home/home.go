// Package home is the layout of a keytool home, defined once: the path of
// every file and directory in it. jwk (the identity), the stores
// (authorized keys, trusted hosts, revocations), tlsbridge (the
// certificate, PKI mode), enroll (the invitations) and the command line
// all take their paths from here, so that none of them can look for a file
// where the others do not write it (docs/design.md, "Files of a home").
package home

import (
	"path/filepath"
	"slices"
	"strings"
)

// Dir is a keytool home directory.
type Dir string

func (d Dir) join(name string) string { return filepath.Join(string(d), name) }

func (d Dir) all(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = d.join(n)
	}
	return out
}

// IdentityNames are the names the identity (private key, 0600) may have:
// a home holds exactly one of them. PublicNames are those of its public
// half (0644). Each call returns a new slice.
func IdentityNames() []string { return []string{"key.json", "key.jwk", "key.pem"} }
func PublicNames() []string   { return []string{"pub_key.json", "pub_key.jwk", "pub_key.pem"} }

// Identity lists the paths of IdentityNames in the home.
func (d Dir) Identity() []string { return d.all(IdentityNames()...) }

// Public lists the paths of PublicNames in the home.
func (d Dir) Public() []string { return d.all(PublicNames()...) }

// NextNames are the names of the next identity (private, 0600): the key
// the identity's certificate announces, made current by a rotation
// (docs/design.md, "Announced rotation"). NextPublicNames are those of its
// public half. A home holds at most one next key.
func NextNames() []string { return []string{"key.next.json", "key.next.jwk", "key.next.pem"} }
func NextPublicNames() []string {
	return []string{"pub_key.next.json", "pub_key.next.jwk", "pub_key.next.pem"}
}

// Next lists the paths of NextNames in the home; NextPublic, of
// NextPublicNames.
func (d Dir) Next() []string       { return d.all(NextNames()...) }
func (d Dir) NextPublic() []string { return d.all(NextPublicNames()...) }

// PublicBeside lists the paths the public half of the private key file
// keyFile may have beside it, one for each format keytool writes: pub_,
// then keyFile's name without its extension, then the format's
// extension (.json, .jwk, .pem). keytool gen writes one of them, the
// one of the format it writes the key in: pub_key.* for the home's
// identity (key.*), pub_key.next.* for its next key, pub_server.pem for
// the key -i names server.key written with -f pem.
func PublicBeside(keyFile string) []string {
	var out []string
	for _, ext := range []string{".json", ".jwk", ".pem"} {
		out = append(out, PublicOf(keyFile, ext))
	}
	return out
}

// PublicOf is the public half of the private key file keyFile in the
// format whose extension is ext, as keytool gen writes it: pub_, keyFile's
// name without its extension, then ext, beside keyFile.
func PublicOf(keyFile, ext string) string {
	dir, name := filepath.Split(keyFile)
	return filepath.Join(dir, "pub_"+strings.TrimSuffix(name, filepath.Ext(name))+ext)
}

// Old is the name a rotation gives the identity it replaces: key.old.,
// the time of the rotation (UTC, 20061102T150405Z), and the identity's own
// extension (".json"). It stays until the admin removes it.
func (d Dir) Old(stamp, ext string) string { return d.join("key.old." + stamp + ext) }

// Found is the name a rotation that stopped gives the key it found under
// the identity's name and cannot put back as the next key (another was
// made meanwhile): key.found., a stamp no file holds (the time and random
// bits), and the key's extension. It stays until the admin removes it.
func (d Dir) Found(stamp, ext string) string { return d.join("key.found." + stamp + ext) }

// IsOld reports whether name (a file name in the home) is one that Old
// gives: key.old.*, not a temporary file.
func IsOld(name string) bool {
	return strings.HasPrefix(name, "key.old.") && !strings.HasSuffix(name, ".tmp")
}

// IsFound reports whether name (a file name in the home) is one that
// Found gives: key.found.*, not a temporary file.
func IsFound(name string) bool {
	return strings.HasPrefix(name, "key.found.") && !strings.HasSuffix(name, ".tmp")
}

// Cert is the optional CA-issued certificate chain of the identity.
func (d Dir) Cert() string { return d.join("cert.pem") }

// CertAside is a name for a cert.pem moved aside, one the home never
// reads: cert.old., the time (UTC, 20061102T150405Z), and .pem — as Old
// names an identity a rotation replaced. keytool's advice moves a
// certificate there that a new key would not fit (docs/cli.md, gen).
func (d Dir) CertAside(stamp string) string { return d.join("cert.old." + stamp + ".pem") }

// CA and CRL are PKI mode's CA bundle and its revocation list.
func (d Dir) CA() string  { return d.join("ca.pem") }
func (d Dir) CRL() string { return d.join("crl.pem") }

// AuthorizedFiles are the single files of authorized client keys, and
// AuthorizedDir the directory of them, one file per client.
func (d Dir) AuthorizedFiles() []string {
	return d.all("authorized_keys.json", "authorized_keys.jwk", "authorized_keys.pem")
}
func (d Dir) AuthorizedDir() string { return d.join("authorized_keys.d") }

// TrustedFiles are the single files of pinned host keys, and TrustedDir
// the directory of them, one file per host. allowed_hosts.json is the
// name Docker's engine-keys proposal gives the client's file: it is read
// as another trusted_hosts.json (the stores add pins to TrustedDir, never
// to a single file, so no writer has to choose between the names).
func (d Dir) TrustedFiles() []string {
	return d.all("trusted_hosts.json", "trusted_hosts.jwk", "trusted_hosts.pem", "allowed_hosts.json")
}
func (d Dir) TrustedDir() string { return d.join("trusted_hosts.d") }

// RevokedFiles and RevokedDir hold the keys refused everywhere.
func (d Dir) RevokedFiles() []string { return d.all("revoked_keys.json", "revoked_keys.pem") }
func (d Dir) RevokedDir() string     { return d.join("revoked_keys.d") }

// Index is the directory of the admin commands' index of the .d
// directories (0700): a cache, rebuilt when stale, safe to delete.
func (d Dir) Index() string { return d.join(".index") }

// Invites is the directory of enrollment invitations (0700).
func (d Dir) Invites() string { return d.join("invites.d") }

// CADir holds the CAs installed beside CA() (docs/trust-stores.md, "ca.d"):
// NAME.pem (CA certificates) and its CRL NAME.crl.pem for every purpose,
// and PURPOSE/NAME.pem, PURPOSE/NAME.crl.pem for connections of one
// purpose only.
func (d Dir) CADir() string { return d.join("ca.d") }

// CAFile and CACRLFile are the paths of the CA NAME installed for purpose
// ("" for every purpose) and of its CRL, in dir (a CADir).
func CAFile(dir, purpose, name string) string {
	return filepath.Join(dir, purpose, name+CASuffix)
}
func CACRLFile(dir, purpose, name string) string {
	return filepath.Join(dir, purpose, name+CRLSuffix)
}

// CASuffix and CRLSuffix end the names of the files in a CADir.
const (
	CASuffix  = ".pem"
	CRLSuffix = ".crl.pem"
)

// ValidName reports whether s may name an installed CA or a purpose — a
// CA's purpose is a directory of CADir, and the same name is a pin's
// "purpose" member and a connection's purpose, so one rule decides all of
// them: a letter or digit, then letters, digits, '.', '_' or '-', at most
// 64 in all, and not ending in ".crl" (the CRL's suffix).
func ValidName(s string) bool {
	if s == "" || len(s) > 64 || strings.HasSuffix(s, ".crl") {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._-", r)) {
			return false
		}
	}
	return true
}

// NameRule says what ValidName admits, for error messages.
const NameRule = "letters, digits, '.', '_' and '-' (a letter or digit first, at most 64)"

// Paths is every path of the home that keytool reads: its identity and
// next key with their public halves, its trust files and directories,
// its PKI files and its invitations (not the index, which is derived).
// A command asks whether a directory is a home, or whether a path is
// inside one, of all of them.
func (d Dir) Paths() []string {
	return slices.Concat(d.Identity(), d.Public(), d.Next(), d.NextPublic(),
		d.AuthorizedFiles(), d.RevokedFiles(), d.TrustedFiles(),
		[]string{d.AuthorizedDir(), d.RevokedDir(), d.TrustedDir(), d.Cert(), d.CA(), d.CRL(), d.CADir(), d.Invites()})
}
