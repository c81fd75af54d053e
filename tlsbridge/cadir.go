package tlsbridge

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keytool/keytool/internal/atomicfile"
	homedir "github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// The CA directory (HOME/ca.d, docs/trust-stores.md): CAs installed one
// file each, with a purpose or for every purpose, after XAPI's trusted
// certificates (docs/seeds.md, 004). The layout is the whole state — no
// database beside it — so that a CA copied in by configuration management
// counts as one installed by InstallCA:
//
//	ca.d/NAME.pem              CA certificates for every purpose
//	ca.d/NAME.crl.pem          their CRLs (optional)
//	ca.d/PURPOSE/NAME.pem      CA certificates for connections of PURPOSE
//	ca.d/PURPOSE/NAME.crl.pem  their CRLs (optional)

// InstalledCA is one CA of a CA directory.
type InstalledCA struct {
	Name    string // the file name without .pem
	Purpose string // "" for every purpose
	File    string
	CRLFile string // "" when it has no CRL
	// Certificates are the CA certificates of File; filled by ListCAs and
	// InstallCA, not by ReadCADir.
	Certificates []*x509.Certificate
}

// ValidCAName reports whether s may name an installed CA or a purpose: a
// letter or digit, then letters, digits, '.', '_' or '-', at most 64 in
// all, and not ending in ".crl" (the CRL's suffix). It is the rule of a
// pin's "purpose" member too (knownhosts.Entry.Purposes).
func ValidCAName(s string) bool { return homedir.ValidName(s) }

// checkPurpose refuses a connection's purpose ("" for none) that no CA
// directory and no pin could name: it would silently choose no CA of its
// own and see no pin of its own.
func checkPurpose(purpose string) error {
	if purpose != "" && !ValidCAName(purpose) {
		return fmt.Errorf("tlsbridge: %q cannot be a purpose: use %s", purpose, homedir.NameRule)
	}
	return nil
}

// ReadCADir lists the CAs of a CA directory, general ones first, without
// reading them. A directory that does not exist holds none. Files not
// ending in .pem and hidden entries are ignored (editors' backups,
// atomicfile's temporary files); a subdirectory whose name cannot be a
// purpose is an error, since its CAs would otherwise be silently unused
// and the general CAs would decide in their place.
func ReadCADir(dir string) ([]InstalledCA, error) {
	var out []InstalledCA
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &PKIFileError{File: dir, Err: err}
	}
	var purposes []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err == nil && fi.IsDir() {
			if !ValidCAName(name) {
				return nil, &PKIFileError{File: path, Err: errors.New("is not a purpose: a purpose is " + homedir.NameRule)}
			}
			purposes = append(purposes, name)
			continue
		}
		ca, ok, err := caEntry(dir, "", name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, ca)
		}
	}
	for _, p := range purposes {
		sub, err := os.ReadDir(filepath.Join(dir, p))
		if err != nil {
			return nil, &PKIFileError{File: filepath.Join(dir, p), Err: err}
		}
		for _, e := range sub {
			if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
				continue
			}
			ca, ok, err := caEntry(dir, p, e.Name())
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, ca)
			}
		}
	}
	return out, nil
}

// caEntry is the CA that file (in dir's purpose subdirectory) holds, if
// it is a CA file: NAME.pem, not NAME.crl.pem. Its CRL is there if its
// name is there, even as a dangling link (which then fails closed). A
// .pem file whose name cannot be a CA's is an error: skipped, it would
// leave its purpose to the general CAs.
func caEntry(dir, purpose, file string) (InstalledCA, bool, error) {
	name, ok := strings.CutSuffix(file, homedir.CASuffix)
	if !ok || strings.HasSuffix(file, homedir.CRLSuffix) {
		return InstalledCA{}, false, nil
	}
	if !ValidCAName(name) {
		return InstalledCA{}, false, &PKIFileError{File: filepath.Join(dir, purpose, file),
			Err: errors.New("is not a CA's name: a CA's name is letters, digits, '.', '_' and '-', then .pem")}
	}
	ca := InstalledCA{Name: name, Purpose: purpose, File: homedir.CAFile(dir, purpose, name)}
	if _, err := os.Lstat(homedir.CACRLFile(dir, purpose, name)); err == nil {
		ca.CRLFile = homedir.CACRLFile(dir, purpose, name)
	}
	return ca, true, nil
}

// ListCAs lists the CAs of a CA directory with their certificates, read
// under the strict-modes rule from the CA directory up to top (the home;
// "" for dir itself). A CA that cannot be read is an error naming it.
func ListCAs(dir, top string) ([]InstalledCA, error) {
	cas, err := ReadCADir(dir)
	if err != nil {
		return nil, err
	}
	if top == "" {
		top = dir
	}
	for i := range cas {
		data, _, err := trustfile.Rule{Top: top}.ReadFile(cas[i].File)
		if err != nil {
			return cas, &PKIFileError{File: cas[i].File, Err: err}
		}
		if cas[i].Certificates, err = parseCertificates(data); err != nil {
			return cas, &PKIFileError{File: cas[i].File, Err: err}
		}
	}
	return cas, nil
}

// CAInstall is a CA to install in a CA directory.
type CAInstall struct {
	// CA holds the CA certificates (PEM); each must be a CA
	// (basicConstraints CA:TRUE).
	CA []byte
	// CRL, if not nil, holds their CRLs (PEM or DER), each signed by one
	// of them; it replaces the CA's CRL.
	CRL []byte
	// Purpose limits the CA to connections of that purpose; "" is every
	// purpose.
	Purpose string
	// Name is the file name; "" derives it from the first certificate's
	// common name (or its key's fingerprint).
	Name string
	// CAFrom and CRLFrom name where CA and CRL were read from (a file
	// name, "standard input"), for the errors about them; "" says "the
	// CA", "the CRL".
	CAFrom, CRLFrom string
	// Top is the top of the trust tree the CA directory is read under
	// (the home), as ListCAs's top; "" is the CA directory itself.
	Top string
}

// CAExistsError means another CA is already installed under that name
// and purpose.
type CAExistsError struct {
	File string
}

func (e *CAExistsError) Error() string {
	return fmt.Sprintf("tlsbridge: another CA is already installed as %s", e.File)
}

// NotCAError means a certificate given as a CA is not one: a server's or
// client's own certificate, whose key is pinned rather than trusted to
// sign others.
type NotCAError struct {
	Subject string
}

func (e *NotCAError) Error() string {
	return fmt.Sprintf("tlsbridge: certificate %q is not a CA (no basicConstraints CA:TRUE)", e.Subject)
}

// OlderCRLError means a CRL given to InstallCA is older than the one
// installed for the same issuer: installing it would admit again what the
// newer one revokes (a stale file, an old playbook run again).
type OlderCRLError struct {
	File   string // the CRL installed
	Issuer string
	// The CRL given and the one installed: their numbers (nil: none) and
	// when they were issued.
	Given, Installed *x509.RevocationList
}

func (e *OlderCRLError) Error() string {
	say := func(c *x509.RevocationList) string {
		if c.Number != nil {
			return fmt.Sprintf("number %s, issued %s", c.Number, c.ThisUpdate.UTC().Format(time.RFC3339))
		}
		return "issued " + c.ThisUpdate.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("tlsbridge: the CRL given for %q (%s) is older than the one installed in %s (%s): it would admit again what the newer one revokes; nothing was written (remove %s first if the older one is meant)",
		e.Issuer, say(e.Given), e.File, say(e.Installed), e.File)
}

// olderCRL returns an *OlderCRLError if a CRL of given is older than
// one of installed by the same issuer: a lower CRL number where both
// have one (RFC 5280, 5.2.3: it only grows), else an earlier thisUpdate.
func olderCRL(file string, given, installed []*x509.RevocationList) error {
	for _, g := range given {
		for _, in := range installed {
			if !bytes.Equal(g.RawIssuer, in.RawIssuer) || !bytes.Equal(g.AuthorityKeyId, in.AuthorityKeyId) {
				continue
			}
			older := g.ThisUpdate.Before(in.ThisUpdate)
			if g.Number != nil && in.Number != nil {
				older = g.Number.Cmp(in.Number) < 0
			}
			if older {
				return &OlderCRLError{File: file, Issuer: g.Issuer.String(), Given: g, Installed: in}
			}
		}
	}
	return nil
}

// InstallCA installs a CA in the CA directory dir (HOME/ca.d), written
// atomically, mode 0644. Installing the same certificates again under
// the same name and purpose replaces their CRL (when in.CRL is given) and
// is otherwise a no-op; other certificates under a taken name are a
// *CAExistsError, and a CRL older than the one installed for the same
// issuer an *OlderCRLError. A running PKI sees the change within a second.
func InstallCA(dir string, in CAInstall) (*InstalledCA, error) {
	if err := checkPurpose(in.Purpose); err != nil {
		return nil, err
	}
	caFrom, crlFrom := cmp.Or(in.CAFrom, "the CA"), cmp.Or(in.CRLFrom, "the CRL")
	cas, err := parseCertificates(in.CA)
	if err != nil {
		return nil, fmt.Errorf("tlsbridge: %s: %w", caFrom, err)
	}
	for _, c := range cas {
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, &NotCAError{Subject: c.Subject.String()}
		}
	}
	var crls []*x509.RevocationList
	if in.CRL != nil {
		var err error
		crls, err = parseCRLs(in.CRL, cas)
		if errors.Is(err, errCRLNotSigned) {
			err = fmt.Errorf("%w in %s", err, caFrom)
		}
		if err != nil {
			return nil, fmt.Errorf("tlsbridge: %s: %w", crlFrom, err)
		}
	}
	name := in.Name
	if name == "" {
		name = defaultCAName(cas[0])
	}
	if !ValidCAName(name) {
		return nil, fmt.Errorf("tlsbridge: %q cannot name a CA: use letters, digits, '.', '_' and '-'", name)
	}
	ca := &InstalledCA{Name: name, Purpose: in.Purpose, File: homedir.CAFile(dir, in.Purpose, name), Certificates: cas}
	if err := os.MkdirAll(filepath.Dir(ca.File), 0o755); err != nil {
		return nil, err
	}
	// Written only where PKI mode will read it from (the strict-modes
	// rule): in a home another user owns or may write, ca.d may be their
	// link to another home's, which would then trust the CA.
	if err := (trustfile.Rule{Top: cmp.Or(in.Top, dir)}).CheckDir(filepath.Dir(ca.File)); err != nil {
		return nil, &PKIFileError{File: filepath.Dir(ca.File), Err: err}
	}
	data := encodeCertificates(cas)
	old, _, err := trustfile.Read(ca.File)
	if err == nil && !bytes.Equal(old, data) {
		return nil, &CAExistsError{File: ca.File}
	}
	// The CRL before the CA: a CA without its CRL, for a moment, would
	// admit what the CRL revokes.
	crlFile := homedir.CACRLFile(dir, in.Purpose, name)
	if err := installCRL(crlFile, crls, cas); err != nil {
		return nil, err
	}
	if err != nil {
		if err := atomicfile.Create(ca.File, data, 0o644); errors.Is(err, fs.ErrExist) {
			return nil, &CAExistsError{File: ca.File}
		} else if err != nil {
			return nil, err
		}
	}
	if _, err := os.Lstat(crlFile); err == nil {
		ca.CRLFile = crlFile
	}
	return ca, nil
}

// installCRL writes crls, given for the CA certificates cas, to crlFile
// — unless one is older than the one installed there for its issuer.
// With none given, a CRL left there (the CA file deleted by hand) must be
// this CA's: another's would fail every CA decision once loaded.
func installCRL(crlFile string, crls []*x509.RevocationList, cas []*x509.Certificate) error {
	have, _, rerr := trustfile.Read(crlFile)
	if crls == nil {
		if rerr == nil {
			if _, perr := parseCRLs(have, cas); perr != nil {
				return fmt.Errorf("tlsbridge: %s is already there and is not a CRL of this CA (%v): remove it, or give the CA's CRL", crlFile, perr)
			}
		}
		return nil
	}
	if rerr == nil {
		// One that is not this CA's (or not a CRL) is replaced.
		if installed, perr := parseCRLs(have, cas); perr == nil {
			if err := olderCRL(crlFile, crls, installed); err != nil {
				return err
			}
		}
	}
	return atomicfile.Write(crlFile, encodeCRLs(crls), 0o644)
}

// defaultCAName is a name for a CA: its common name made a valid name,
// else the start of its key's fingerprint.
func defaultCAName(c *x509.Certificate) string {
	var b strings.Builder
	for _, r := range strings.ToLower(c.Subject.CommonName) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteRune('-')
		}
	}
	name := strings.Trim(b.String(), "-._")
	if len(name) > 48 {
		name = name[:48]
	}
	if !ValidCAName(name) {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		name = fmt.Sprintf("ca-%x", sum[:6])
	}
	return name
}

// encodeCRLs is what InstallCA writes of a CRL file it was given: its
// CRLs alone, as PEM. The file is public (0644), and what was given beside
// them — a PEM file of the CA's may hold its private key too — is not
// the CRL's to publish.
func encodeCRLs(crls []*x509.RevocationList) []byte {
	var b bytes.Buffer
	for _, c := range crls {
		_ = pem.Encode(&b, &pem.Block{Type: "X509 CRL", Bytes: c.Raw})
	}
	return b.Bytes()
}

func encodeCertificates(cas []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range cas {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// NoSuchCAError means no installed CA has that name or fingerprint.
type NoSuchCAError struct {
	Dir, What string
}

func (e *NoSuchCAError) Error() string {
	return fmt.Sprintf("tlsbridge: no CA installed in %s is named or has the fingerprint %q", e.Dir, e.What)
}

// UninstallCA removes from the CA directory dir every CA named what
// (NAME, or PURPOSE/NAME for one purpose's) or holding a certificate
// whose key has the fingerprint what (in any form jwk.ParseFingerprint
// reads) or whose certificate has the SHA-256 fingerprint what (hex,
// colons allowed: openssl x509 -fingerprint -sha256), with its CRL, and
// returns them. None is a *NoSuchCAError.
func UninstallCA(dir, top, what string) (gone []InstalledCA, err error) {
	cas, err := ListCAs(dir, top)
	if err != nil {
		return nil, err
	}
	fp, fpErr := jwk.ParseFingerprint(what)
	certSum, err := hex.DecodeString(strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(what, "sha256 Fingerprint="), "SHA256 Fingerprint="), ":", ""))
	if err != nil || len(certSum) != sha256.Size {
		certSum = nil
	}
	// Durable before the command says so, a failure of a later one
	// included: a removal not yet committed when the power goes would
	// bring the CA back, trusted again.
	var removed []string
	defer func() {
		if serr := syncRemoved(removed); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	for _, ca := range cas {
		match := ca.Name == what || ca.Purpose != "" && ca.Purpose+"/"+ca.Name == what
		if !match {
			match = slices.ContainsFunc(ca.Certificates, func(c *x509.Certificate) bool {
				if sum := sha256.Sum256(c.Raw); certSum != nil && bytes.Equal(certSum, sum[:]) {
					return true // the certificate's own fingerprint, as openssl x509 -fingerprint -sha256 prints it
				}
				k, err := jwk.NewPublicKey(c.PublicKey)
				return fpErr == nil && err == nil && fp.Match(k)
			})
		}
		if !match {
			continue
		}
		// The CA first: a CA without its CRL for a moment would be a CA
		// whose revocations are not applied.
		if err := os.Remove(ca.File); err != nil {
			return gone, err
		}
		removed = append(removed, ca.File)
		if ca.CRLFile != "" {
			err := os.Remove(ca.CRLFile)
			if err == nil {
				removed = append(removed, ca.CRLFile)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return gone, err
			}
		}
		gone = append(gone, ca)
	}
	if len(gone) == 0 {
		return nil, &NoSuchCAError{Dir: dir, What: what}
	}
	return gone, nil
}

// syncRemoved syncs the directory of each of files, removed, once
// (atomicfile.SyncDirsOf); one that fails does not stop the others.
func syncRemoved(files []string) error {
	failed := atomicfile.SyncDirsOf(files)
	var errs []error
	for _, d := range slices.Sorted(maps.Keys(failed)) {
		errs = append(errs, fmt.Errorf("tlsbridge: removed from %s, but the directory could not be synced, so the removal may not survive a power loss: %w", d, failed[d]))
	}
	return errors.Join(errs...)
}
