package tlsbridge

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// PKI is the optional CA mode (docs/design.md, "Decisions"): peers whose key is
// not pinned may be accepted because their certificate chains to a CA and
// is not revoked by that CA's CRL. Pins come first: a pinned key is decided
// by its pin alone, and the CAs are consulted only for keys without one.
//
// The CAs come from three places, each with its own CRL: the CA bundle
// (PKIOptions.CA, HOME/ca.pem, with PKIOptions.CRL), PEM given in memory
// (PKIOptions.CAPEM and CRLPEM, libvirt's AddCertData), and the directory
// of installed CAs (PKIOptions.Dir, HOME/ca.d: see InstallCA), where a CA
// may be for one purpose only. A connection for purpose P is verified by
// the CAs for P if any are installed, else by the general ones (every CA
// without a purpose); the tier chosen decides alone — a refusal there is
// final, and a CA for another purpose never admits (docs/design.md,
// "Purposes", after XAPI's precedence of trust stores). Revocations are
// not the tier's alone: a CRL or a revoked key of any CA installed, of
// any tier, refuses what it revokes through every tier.
//
// Every file is a trust file like any other (docs/design.md, "One
// file-trust rule"): it is read with the strict-modes rule of package
// trustfile — the file, a link's target and every directory up to the
// home must belong to root or this process's user and not be writable by
// group or others — since whoever can add a CA can let any client in.
//
// The files are checked again at most once a second, at handshakes: a
// change of content, owner or mode of a file (its size, times, inode,
// mode and owner), of a directory above it, or of the entries of the CA
// directory is noticed, so a new CRL or CA applies without a restart, and
// a ca.pem made writable by others stops counting. If a file cannot be
// read, fails the rule or cannot be parsed, every CA-based decision
// fails, naming the file, until it is fixed: a CRL that cannot be read
// revokes nothing only in attackers' dreams.
type PKI struct {
	opts PKIOptions

	state     atomic.Pointer[pkiState]
	mu        sync.Mutex // serialises reloads
	checkedAt atomic.Int64
}

// PKIOptions say where PKI mode's CAs and CRLs are. At least one of CA,
// CAPEM and Dir is needed.
type PKIOptions struct {
	// CA is the CA bundle (PEM certificates), for every purpose.
	CA string
	// CRL, if set, holds the CRLs issued by the CAs of the bundle (PEM or
	// DER); every CRL must be signed by one of them. With a CRL file, a
	// certificate whose issuer has no CRL in it is refused.
	CRL string
	// CAPEM and CRLPEM are CA certificates and their CRLs given in memory
	// (PEM), as libvirt's virConnectAddCertData takes them: one more CA
	// bundle for every purpose, under the same rules as CA and CRL.
	CAPEM, CRLPEM []byte
	// Dir is the directory of installed CAs (HOME/ca.d): NAME.pem with
	// its optional CRL NAME.crl.pem for every purpose, and
	// PURPOSE/NAME.pem (and PURPOSE/NAME.crl.pem) for connections of that
	// purpose only. A directory that does not exist holds no CA.
	Dir string
	// Home is the top of the trust tree (the keytool home): the strict
	// modes are checked from each file up to it, and for a file outside
	// it up to the root directory. Empty: each file's own directory is
	// the top.
	Home string
	// NoStrictModes turns off the ownership and permission checks, for
	// file systems whose permissions mean nothing (some containers). The
	// files are still read without blocking and within trustfile.MaxSize.
	NoStrictModes bool
}

// memoryFile names the CAs and CRLs of PKIOptions.CAPEM in messages.
const memoryFile = "(CA given in memory)"

type pkiState struct {
	tiers map[string][]*caSet // by purpose; "" the general CAs
	// all are the sets of every tier, in the order loaded: a tier
	// chooses which CAs may admit, but revocations are looked for among
	// all of them (docs/design.md, "Purposes").
	all     []*caSet
	index   *caIndex // of all: what handshakes look up
	stamp   pkiStamp
	loadErr error
	// verified are the chains this state verified (nil after loadErr).
	verified *verifiedCache
}

// caSet is one CA bundle with its own CRLs: ca.pem and crl.pem, the PEM
// given in memory, or one installed CA of ca.d.
type caSet struct {
	file, crlFile string // crlFile "": no CRL, none required
	purpose, name string // name: the installed CA's name, "" for ca.pem and memory
	cas           []*x509.Certificate
	roots         *x509.CertPool
	crls          []*x509.RevocationList
}

// pkiStamp is what the periodic check compares: each file's and
// directory's stat key, and whether the rule held, with its error, so that
// a directory above a file becoming writable (which the file's own stat
// does not show) is noticed.
type pkiStamp struct {
	key, rule string
}

// PKIFileError means a file of PKI mode cannot be used: it cannot be
// read, fails the strict-modes rule (Err is a *trustfile.PermissionError
// or *trustfile.LinkError), or does not hold what it should. Every
// CA-based decision fails until it is fixed.
type PKIFileError struct {
	File string // the CA bundle, the CRL file or the CA directory
	Err  error
}

func (e *PKIFileError) Error() string {
	return fmt.Sprintf("tlsbridge: PKI mode: %s: %v", e.File, e.Err)
}

func (e *PKIFileError) Unwrap() error { return e.Err }

// LoadPKI reads the CAs and their CRLs (see PKIOptions) under the
// strict-modes rule.
func LoadPKI(opts PKIOptions) (*PKI, error) {
	if opts.CA == "" && opts.CAPEM == nil && opts.Dir == "" {
		return nil, errors.New("tlsbridge: PKIOptions needs CA, CAPEM or Dir")
	}
	if opts.CA == "" && opts.CRL != "" {
		return nil, errors.New("tlsbridge: PKIOptions.CRL needs the CA bundle that signed it (PKIOptions.CA)")
	}
	if opts.CAPEM == nil && opts.CRLPEM != nil {
		return nil, errors.New("tlsbridge: PKIOptions.CRLPEM needs the CAs that signed it (PKIOptions.CAPEM)")
	}
	p := &PKI{opts: opts}
	st := p.load()
	if st.loadErr != nil {
		return nil, st.loadErr
	}
	p.state.Store(st)
	p.checkedAt.Store(time.Now().UnixNano())
	return p, nil
}

// ParsePKI is PKI mode from memory: CA certificates and, if crl is not
// nil, their CRLs, both PEM (libvirt's virConnectAddCertData). Nothing is
// read from files, and nothing changes after it returns.
func ParsePKI(ca, crl []byte) (*PKI, error) {
	if ca == nil {
		ca = []byte{}
	}
	return LoadPKI(PKIOptions{CAPEM: ca, CRLPEM: crl})
}

// rule is the strict-modes rule for file.
func (p *PKI) rule(file string) trustfile.Rule {
	top := p.opts.Home
	if top == "" {
		top = filepath.Dir(file)
		if d := p.opts.Dir; d != "" && (file == d || strings.HasPrefix(file, d+string(filepath.Separator))) {
			top = d // the top of an installed CA's tree is the CA directory
		}
	}
	return trustfile.Rule{Top: top, Off: p.opts.NoStrictModes}
}

// stamp stats the files and the CA directory and checks the rule on them,
// without reading the files.
func (p *PKI) stamp() pkiStamp {
	var key strings.Builder
	var ruleErrs []string
	check := func(file string) {
		lfi, err := os.Lstat(file)
		if err != nil {
			fmt.Fprintf(&key, "%s: %v\n", file, err)
			return
		}
		fi, err := os.Stat(file)
		if err != nil {
			ruleErrs = append(ruleErrs, err.Error())
			fmt.Fprintf(&key, "%s: %v\n", file, trustfile.StampOf(lfi))
			return
		}
		if fi.IsDir() {
			err = p.rule(file).CheckDir(file)
		} else {
			err = p.rule(file).CheckFile(file, fi, lfi.Mode()&fs.ModeSymlink != 0, false)
		}
		if err != nil {
			ruleErrs = append(ruleErrs, err.Error())
		}
		fmt.Fprintf(&key, "%s: %v\n", file, trustfile.StampOf(fi))
	}
	for _, f := range []string{p.opts.CA, p.opts.CRL} {
		if f != "" {
			check(f)
		}
	}
	if p.opts.Dir != "" {
		for _, f := range caDirPaths(p.opts.Dir) {
			check(f)
		}
	}
	return pkiStamp{key: key.String(), rule: strings.Join(ruleErrs, "\n")}
}

// caDirPaths lists dir, its purpose directories and the files in them
// (unread), for the stamp.
func caDirPaths(dir string) []string {
	out := []string{dir}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		out = append(out, path)
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			sub, _ := os.ReadDir(path)
			for _, s := range sub {
				out = append(out, filepath.Join(path, s.Name()))
			}
		}
	}
	return out
}

func (p *PKI) load() *pkiState {
	// The stamp is taken before reading: a change while reading makes the
	// next check differ, and read again.
	st := &pkiState{stamp: p.stamp(), tiers: map[string][]*caSet{}}
	add := func(set *caSet, err error) bool {
		if err != nil {
			st.loadErr = err
			return false
		}
		st.tiers[set.purpose] = append(st.tiers[set.purpose], set)
		st.all = append(st.all, set)
		return true
	}
	if p.opts.CA != "" && !add(p.readSet(p.opts.CA, p.opts.CRL, "", "")) {
		return st
	}
	if p.opts.CAPEM != nil {
		set := &caSet{file: memoryFile}
		if p.opts.CRLPEM != nil {
			set.crlFile = memoryFile
		}
		if !add(set, set.parse(p.opts.CAPEM, p.opts.CRLPEM)) {
			return st
		}
	}
	if p.opts.Dir != "" {
		found, err := ReadCADir(p.opts.Dir)
		if err != nil {
			st.loadErr = err
			return st
		}
		for _, ca := range found {
			if !add(p.readSet(ca.File, ca.CRLFile, ca.Purpose, ca.Name)) {
				return st
			}
		}
	}
	st.index = newCAIndex(st.all)
	st.verified = newVerifiedCache(st.all)
	return st
}

// readSet reads a CA bundle and, if crlFile is not empty, its CRLs.
func (p *PKI) readSet(caFile, crlFile, purpose, name string) (*caSet, error) {
	set := &caSet{file: caFile, crlFile: crlFile, purpose: purpose, name: name}
	data, _, err := p.rule(caFile).ReadFile(caFile)
	if err != nil {
		return nil, &PKIFileError{File: caFile, Err: err}
	}
	var crl []byte
	if crlFile != "" {
		if crl, _, err = p.rule(crlFile).ReadFile(crlFile); err != nil {
			return nil, &PKIFileError{File: crlFile, Err: err}
		}
	}
	return set, set.parse(data, crl)
}

// parse reads the set's CA certificates (PEM) and, if crl is not nil, its
// CRLs (PEM or DER), each of which must be signed by one of the CAs.
func (set *caSet) parse(ca, crl []byte) error {
	cas, err := parseCertificates(ca)
	if err != nil {
		return &PKIFileError{File: set.file, Err: err}
	}
	set.cas = cas
	set.roots = x509.NewCertPool()
	for _, c := range cas {
		set.roots.AddCert(c)
	}
	if crl == nil {
		return nil
	}
	crls, err := parseCRLs(crl, cas)
	if err != nil {
		if errors.Is(err, errCRLNotSigned) {
			err = fmt.Errorf("%w in %s", err, set.file)
		}
		return &PKIFileError{File: set.crlFile, Err: err}
	}
	set.crls = crls
	return nil
}

// parseCertificates reads the CERTIFICATE blocks of a PEM bundle; it must
// hold one at least. A block that does not decode is an error, as in a
// CRL file (decodePEM): skipped, a root would be missing, and with it its
// CRL's and its revoked key's say over the CAs it signed
// (docs/design.md, "Chains and their CRLs").
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	blocks, err := decodePEM(data)
	if err != nil {
		return nil, err
	}
	var cas []*x509.Certificate
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i+1, err)
		}
		cas = append(cas, c)
	}
	if len(cas) == 0 {
		return nil, errors.New("holds no CERTIFICATE")
	}
	return cas, nil
}

// errCRLNotSigned: a CRL is signed by none of the CAs it was given with;
// the caller names the CAs' file.
var errCRLNotSigned = errors.New("a CRL is not signed by any CA")

// parseCRLs reads CRLs (PEM, or one in DER), each of which must be signed
// by one of cas and say when its next one is due. Nothing of the data may
// be skipped: a PEM block that does not decode (a copy cut short, a
// damaged line) and bytes after a DER CRL (`cat old.crl new.crl`) are
// errors, not ignored — skipped, the newest CRL would be the one missing
// and an older one would decide (docs/design.md, "Chains and their CRLs").
func parseCRLs(data []byte, cas []*x509.Certificate) ([]*x509.RevocationList, error) {
	var ders [][]byte
	if bytes.Contains(data, pemBegin) {
		blocks, err := decodePEM(data)
		if err != nil {
			return nil, err
		}
		for _, b := range blocks {
			if b.Type == "X509 CRL" {
				ders = append(ders, b.Bytes)
			}
		}
	} else {
		ders = [][]byte{data}
	}
	if len(ders) == 0 {
		return nil, errors.New("holds no X509 CRL")
	}
	var out []*x509.RevocationList
	for i, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("CRL %d: %w", i+1, err)
		}
		if len(crl.Raw) != len(der) {
			return nil, fmt.Errorf("CRL %d: %d bytes follow it (DER CRLs concatenated? give each as PEM)", i+1, len(der)-len(crl.Raw))
		}
		if crl.NextUpdate.IsZero() {
			// RFC 5280, 5.1.2.5: conforming CAs include it. Without it
			// the CRL never expires, and an old one would vouch for
			// ever.
			return nil, fmt.Errorf("CRL %d (of %q) has no nextUpdate, so it would never expire (RFC 5280, 5.1.2.5): re-issue it with a next update, e.g. openssl ca -gencrl -crldays 30", i+1, crl.Issuer)
		}
		signed := false
		for _, ca := range cas {
			if bytes.Equal(crl.RawIssuer, ca.RawSubject) && crl.CheckSignatureFrom(ca) == nil {
				signed = true
				break
			}
		}
		if !signed {
			return nil, errCRLNotSigned
		}
		out = append(out, crl)
	}
	return out, nil
}

var pemBegin = []byte("-----BEGIN")

// decodePEM returns every PEM block of data, failing on the first
// "-----BEGIN" that does not start a block that decodes: pem.Decode
// itself skips such a block silently and returns the next one.
func decodePEM(data []byte) ([]*pem.Block, error) {
	var out []*pem.Block
	for rest := data; ; {
		i := bytes.Index(rest, pemBegin)
		if i < 0 {
			return out, nil
		}
		b, after := pem.Decode(rest[i:])
		// Decoded, the block runs from this "-----BEGIN" to its END
		// line; a second "-----BEGIN" in it means this one was skipped.
		if b == nil || bytes.Count(rest[i:len(rest)-len(after)], pemBegin) != 1 {
			return nil, fmt.Errorf("PEM block %d cannot be read (damaged or cut short)", len(out)+1)
		}
		out = append(out, b)
		rest = after
	}
}

// current returns the state, re-reading the files if they (or the rule's
// verdict on them) changed.
func (p *PKI) current() *pkiState {
	now := time.Now().UnixNano()
	if last := p.checkedAt.Load(); now-last < int64(time.Second) || !p.checkedAt.CompareAndSwap(last, now) {
		return p.state.Load()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state.Load()
	if p.opts.CA == "" && p.opts.Dir == "" {
		return st // memory only: nothing to re-read
	}
	if p.stamp() != st.stamp {
		st = p.load()
		p.state.Store(st)
	}
	return st
}

// processed reports whether every critical extension of crl is one PKI
// mode applies: the authority key identifier and the CRL number, which
// crypto/x509 reads (it refuses none it does not know).
func processed(crl *x509.RevocationList) bool {
	for _, ext := range crl.Extensions {
		if ext.Critical && !ext.Id.Equal(oidAuthorityKeyID) && !ext.Id.Equal(oidCRLNumber) {
			return false
		}
	}
	return true
}

// The CRL extensions processed reads (RFC 5280, 5.2.1 and 5.2.3).
var (
	oidAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber      = asn1.ObjectIdentifier{2, 5, 29, 20}
)

// RevokedCertificateError means a certificate is listed in the CRL.
type RevokedCertificateError struct {
	Subject string
	Serial  string
	File    string
}

func (e *RevokedCertificateError) Error() string {
	return fmt.Sprintf("tlsbridge: PKI mode: certificate %q (serial %s) is revoked by %s", e.Subject, e.Serial, e.File)
}

// CARefusedError means PKI mode refused a certificate: it does not verify
// against the CA bundle (for the usage or host name asked), or the CRL
// file cannot vouch for it (no CRL for its issuer, or an expired CRL).
// File is the CA bundle or the CRL file that decided.
type CARefusedError struct {
	File string
	Err  error
}

func (e *CARefusedError) Error() string {
	return fmt.Sprintf("tlsbridge: PKI mode: the certificate is refused by %s: %v", e.File, e.Err)
}

func (e *CARefusedError) Unwrap() error { return e.Err }

// CAVerified says how PKI mode verified a certificate: which CA, for
// which purpose.
type CAVerified struct {
	// Purpose is the purpose of the CAs that verified the certificate:
	// the connection's, or "" for the general CAs.
	Purpose string
	// Name is the installed CA's name (ca.d), "" for the CA bundle and
	// for CAs given in memory.
	Name string
	// File is the CA file (the bundle, or an installed CA's file).
	File string
	// Chain is the verified chain, leaf first, the CA last.
	Chain []*x509.Certificate

	// completed are the verified chains of every set that verified the
	// certificate, each completed up to a self-signed CA of any tier
	// (completeChains): what revokedInChain looks at.
	completed [][]*x509.Certificate
}

// RevokedCAKeyError means a certificate was verified by PKI mode through
// a CA (or intermediate) whose key is revoked (revoked_keys.d): a revoked
// key is refused everywhere, and vouches for nobody. Err is the store's
// revocation error for that key (*authkeys.RevokedError,
// *knownhosts.RevokedError), which names its file.
type RevokedCAKeyError struct {
	CA  string // the subject of the CA certificate whose key is revoked
	Err error
}

func (e *RevokedCAKeyError) Error() string {
	return fmt.Sprintf("tlsbridge: PKI mode: the chain goes through the CA %q, whose key is revoked: %v", e.CA, e.Err)
}

func (e *RevokedCAKeyError) Unwrap() error { return e.Err }

// revokedInChain refuses a certificate v that goes through a revoked
// key: the CAs above the leaf (the leaf was decided before PKI mode was
// asked) on every completed chain — not only the first, nor only up to
// an intermediate the bundle holds beside its root (docs/design.md,
// "Chains and their CRLs") — are looked up with revoked, which says
// whether the key sum is revoked, and the store's error for it.
func revokedInChain(v *CAVerified, revoked func(sum [32]byte) (bool, error)) error {
	chains := v.completed
	if chains == nil {
		chains = [][]*x509.Certificate{v.Chain}
	}
	for _, ch := range chains {
		for _, ca := range ch[1:] {
			sum, err := caKeySum(ca)
			if err != nil {
				return err
			}
			if yes, err := revoked(sum); yes {
				return &RevokedCAKeyError{CA: ca.Subject.String(), Err: err}
			}
		}
	}
	return nil
}

// CA returns the CA certificate at the end of the verified chain.
func (v *CAVerified) CA() *x509.Certificate { return v.Chain[len(v.Chain)-1] }

// NoCAError means PKI mode holds no CA for a connection's purpose and no
// general CA: the CAs cannot decide, and the connection is decided as
// without PKI mode (a CA for another purpose never admits).
type NoCAError struct {
	Purpose string
}

func (e *NoCAError) Error() string {
	if e.Purpose == "" {
		return "tlsbridge: PKI mode: no general CA is installed"
	}
	return fmt.Sprintf("tlsbridge: PKI mode: no CA is installed for purpose %q, nor a general one", e.Purpose)
}

// Verify checks a peer's certificate chain (leaf first) against the
// general CAs — VerifyPurpose without a purpose — and returns only the
// error.
func (p *PKI) Verify(chain []*x509.Certificate, usage x509.ExtKeyUsage, dnsName string) error {
	_, err := p.VerifyPurpose("", chain, usage, dnsName)
	return err
}

// VerifyPurpose checks a peer's certificate chain (leaf first) for a
// connection of the given purpose: against the CAs installed for it if
// there are any, else against the general CAs ("Purposes" in
// docs/design.md); the tier chosen decides alone which CAs may admit. The
// chain must verify for the usage and, if dnsName is not empty, host
// name; then each chain found is completed up to a self-signed CA among
// the CAs of every tier — a revocation is never the tier's alone — and a
// certificate of any of them listed by its issuer's CRL is refused, and so
// is one whose issuer's CRLs are there but none can be used, and a chain
// whose leaf's issuer has no current CRL when the CA holding that issuer
// came with a CRL (docs/design.md, "Chains and their CRLs"). With no CA
// for the purpose nor a general one, the error is a *NoCAError.
//
// A chain verified is remembered until the CAs, their CRLs or the time
// could change the answer (verifiedCache), so that asking again — as
// PeerOf does at each request — costs a hash of the chain. The
// *CAVerified returned is the caller's; its Chain is shared, not to be
// modified.
func (p *PKI) VerifyPurpose(purpose string, chain []*x509.Certificate, usage x509.ExtKeyUsage, dnsName string) (*CAVerified, error) {
	st := p.current()
	if st.loadErr != nil {
		return nil, st.loadErr
	}
	if len(chain) == 0 {
		return nil, errors.New("tlsbridge: PKI mode: no certificate to verify")
	}
	// The wall clock alone, read once: with its monotonic reading, a
	// clock set back would not look set back to the cache, which compares
	// this reading with the one of the verification it kept (found by
	// review).
	now := pkiNow().Round(0)
	key := verifiedKey(purpose, chain, usage, dnsName)
	v := st.verified.get(key, now)
	if v == nil {
		var err error
		if v, err = st.verifyPurpose(purpose, chain, usage, dnsName, now); err != nil {
			return nil, err
		}
		st.verified.keep(key, chain, v, now)
	}
	c := *v
	return &c, nil
}

// verifyPurpose is VerifyPurpose at now, without the cache.
func (st *pkiState) verifyPurpose(purpose string, chain []*x509.Certificate, usage x509.ExtKeyUsage, dnsName string, now time.Time) (*CAVerified, error) {
	tier := purpose
	if len(st.tiers[tier]) == 0 {
		tier = ""
	}
	sets := st.tiers[tier]
	if len(sets) == 0 {
		return nil, &NoCAError{Purpose: purpose}
	}
	if len(chain) > MaxPeerChain {
		return nil, &CARefusedError{File: setFiles(sets), Err: &PeerChainTooLongError{Certificates: len(chain)}}
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// Only a set holding the issuer of a certificate of the chain can
	// verify it (ca.d may hold many CAs, one file each): the others are
	// not asked to build chains. With no such set, the first one's error
	// says why no CA verifies the chain, built from the leaf alone: the
	// rest, anchored nowhere, would only spend signature checks.
	candidates := st.index.mayAnchor(tier, sets, chain)
	if len(candidates) == 0 {
		candidates, inter = sets[:1], nil
	}
	var (
		ok       *CAVerified
		refusals []error
	)
	for _, set := range candidates {
		chains, err := chain[0].Verify(x509.VerifyOptions{
			Roots: set.roots, Intermediates: inter, DNSName: dnsName,
			KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: now,
		})
		if err != nil {
			refusals = append(refusals, err)
			continue
		}
		// Every set that verifies the chain must also accept it, on
		// every path: one revoking it is enough to refuse. The paths are
		// completed, and their CRLs asked, among the CAs of every tier:
		// the tier chose which CAs may admit, but a CA installed for a
		// purpose is still signed by its root, whose CRL and revoked
		// key speak for it wherever the root is installed.
		completed, err := st.index.completeChains(st.all, chains)
		if err != nil {
			return nil, &CARefusedError{File: set.file, Err: err}
		}
		if err := st.index.checkCRLs(set, completed, now); err != nil {
			return nil, err
		}
		if ok == nil {
			ok = &CAVerified{Purpose: set.purpose, Name: set.name, File: set.file, Chain: chains[0]}
		}
		ok.completed = append(ok.completed, completed...)
	}
	if ok != nil {
		return ok, nil
	}
	return nil, &CARefusedError{File: setFiles(sets), Err: refusals[0]}
}

// setFiles names the files of sets for a refusal: all of them, or the
// first three and how many more.
func setFiles(sets []*caSet) string {
	var files []string
	for i, set := range sets {
		if i == 3 {
			files = append(files, fmt.Sprintf("and %d more", len(sets)-3))
			break
		}
		files = append(files, set.file)
	}
	return strings.Join(files, ", ")
}

// MaxPeerChain is the most certificates PKI mode takes from a peer: its
// own and 9 more. Real chains are 2 to 4. crypto/x509 stops
// building chains after 100 signature checks and returns the paths found
// so far without error, and every certificate the peer sends with a CA's
// subject costs one check where that CA is looked for: a chain padded
// with junk could spend the budget after one clean path and hide a
// revoked one, which completion (completeChains) only extends, never
// finds (docs/design.md, "Chains and their CRLs"). Bounded, the junk
// costs a few checks at most per certificate on a path.
const MaxPeerChain = 10

// PeerChainTooLongError means a peer sent more than MaxPeerChain
// certificates. It is the Err of a *CARefusedError.
type PeerChainTooLongError struct {
	Certificates int // how many the peer sent
}

func (e *PeerChainTooLongError) Error() string {
	return fmt.Sprintf("the peer sent %d certificates, more than the %d PKI mode verifies (real chains are 2 to 4)", e.Certificates, MaxPeerChain)
}

// CRLClockSkew is how far ahead of this machine's clock a CRL's
// thisUpdate may be and the CRL still be used: a CRL dated later is not
// valid yet (OpenSSL's X509_V_ERR_CRL_NOT_YET_VALID), and taken as the
// newest it would hide every CRL its CA issues until then.
const CRLClockSkew = 5 * time.Minute

// maxCompleted bounds the chains completeChains builds from the chains
// crypto/x509 verified (cross-signed CAs branch); beyond it, refused.
const maxCompleted = 64

// completeChains extends each verified chain that ends at a CA which is
// not self-signed — an intermediate held in the bundle beside its root,
// as a chain file or `keytool ca add chain.pem` installs it, which
// crypto/x509 takes as an anchor — with its issuers among the CAs of
// every set of sets (the CAs of every tier), until a self-signed CA or a
// CA whose issuer no set holds. A CA above the anchor is added only to
// be checked (its CRL, revoked keys): completion never admits anything
// Verify refused, so the added CAs' validity dates are not asked. Without
// it, the root's CRL revoking the intermediate, or the root's key
// revoked, would apply only when the peer chose to send the intermediate
// (docs/design.md, "Chains and their CRLs").
func (ix *caIndex) completeChains(sets []*caSet, chains [][]*x509.Certificate) ([][]*x509.Certificate, error) {
	var out [][]*x509.Certificate
	var walk func(ch []*x509.Certificate) error
	walk = func(ch []*x509.Certificate) error {
		if len(out) >= maxCompleted {
			return fmt.Errorf("more than %d paths from the certificate to its CAs", maxCompleted)
		}
		var parents []*x509.Certificate
		if top := ch[len(ch)-1]; !ix.isSelfSigned(top) {
			parents = ix.issuersOf(sets, top, ch)
		}
		if len(parents) == 0 {
			out = append(out, ch)
			return nil
		}
		for _, p := range parents {
			if err := walk(append(ch[:len(ch):len(ch)], p)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, ch := range chains {
		if err := walk(ch); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// checkCRLs applies the CRLs to every certificate of every completed
// chain that verifier (a set of the tier) verified, against the sets of
// every tier, since a CRL speaks wherever its CA is installed. The decision is
// the conservative one: a certificate revoked on any path is refused,
// although crypto/x509 would call the certificate valid if one path
// were clean. A revocation speaks about the certificate, not about a path
// to it; OpenSSL checks only the one chain it builds, which makes its
// verdict depend on the order of the bundle or on what the peer sends.
// Each certificate is checked against the CRLs of the sets holding its
// issuer, or, for an issuer the peer sent that no set holds, of verifier.
func (ix *caIndex) checkCRLs(verifier *caSet, chains [][]*x509.Certificate, now time.Time) error {
	for _, ch := range chains {
		for i := 0; i+1 < len(ch); i++ {
			cert, issuer := ch[i], ch[i+1]
			by := ix.holdersOf(issuer)
			if len(by) == 0 {
				by = []*caSet{verifier}
			}
			for _, set := range by {
				if err := set.checkCRL(ix, cert, issuer, i == 0, now); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkCRL applies the set's CRLs to cert, signed by issuer. With no CRL
// of the issuer at all, the leaf (leaf true) is refused and a CA is not
// (a CRL file need not hold its root's CRL); with CRLs of the issuer none
// of which can be used, every certificate is refused: a CRL that is there
// and cannot speak is not "no CRL". The newest usable CRL decides; the
// issuer's CRLs that cannot (delta, future-dated) still revoke what they
// list, when dated no earlier than it.
func (set *caSet) checkCRL(ix *caIndex, cert, issuer *x509.Certificate, leaf bool, now time.Time) error {
	if set.crlFile == "" {
		return nil
	}
	crls := ix.crlsOf(set, issuer)
	crl, unusable := newestCRL(crls, now)
	if crl == nil {
		if unusable != "" {
			return &CARefusedError{File: set.crlFile, Err: &CRLUnusableError{Issuer: issuer.Subject.String(), Subject: cert.Subject.String(), Reason: unusable}}
		}
		if leaf {
			return &CARefusedError{File: set.crlFile, Err: fmt.Errorf("no CRL for the issuer %q of %q, so its revocation status is unknown", issuer.Subject, cert.Subject)}
		}
		return nil
	}
	if now.After(crl.NextUpdate) {
		// The key, not only the subject: after a key rollover the old and
		// the new CA share a subject, and each has its CRL.
		return &CARefusedError{File: set.crlFile, Err: fmt.Errorf("the CRL of %q (key %s) expired at %s: put a current one in the file (after a CA's key rollover, also the old key's, or remove the old key's CA certificates)", issuer.Subject, caKeyName(issuer), crl.NextUpdate.Format(time.RFC3339))}
	}
	if lists(crl, cert, false) {
		return &RevokedCertificateError{Subject: cert.Subject.String(), Serial: cert.SerialNumber.String(), File: set.crlFile}
	}
	// A CRL of the issuer that cannot decide (a delta CRL, one dated in
	// the future) still carries revocations its CA signed: one dated
	// no earlier than the CRL that decides is newer news, which the
	// full CRL does not hold yet (docs/design.md, "Chains and their
	// CRLs").
	for _, other := range crls {
		if other != crl && unusableCRL(other, now) != "" && !other.ThisUpdate.Before(crl.ThisUpdate) && lists(other, cert, true) {
			return &RevokedCertificateError{Subject: cert.Subject.String(), Serial: cert.SerialNumber.String(), File: set.crlFile}
		}
	}
	return nil
}

// lists reports whether crl lists cert (by serial: crl is its issuer's).
// With unused, an entry whose reason is removeFromCRL (a delta CRL's
// release of a hold: RFC 5280, 5.3.1) does not count.
func lists(crl *x509.RevocationList, cert *x509.Certificate, unused bool) bool {
	for _, rc := range crl.RevokedCertificateEntries {
		if rc.SerialNumber.Cmp(cert.SerialNumber) == 0 && !(unused && rc.ReasonCode == reasonRemoveFromCRL) {
			return true
		}
	}
	return false
}

// reasonRemoveFromCRL is the CRLReason removeFromCRL (RFC 5280, 5.3.1).
const reasonRemoveFromCRL = 8

// caKeyName names a CA's key in messages: its fingerprint, as
// revoked_keys.d and the stores name keys, else its subject key ID.
func caKeyName(ca *x509.Certificate) string {
	if sum, err := caKeySum(ca); err == nil {
		return jwk.FormatFingerprint(sum)
	}
	return fmt.Sprintf("with subject key ID %x", ca.SubjectKeyId)
}

// CRLUnusableError means the CRL file holds CRLs of a certificate's
// issuer but none PKI mode can use: each has a critical extension it does
// not process, or is dated after now (CRLClockSkew). It is the Err of a
// *CARefusedError, which names the file.
type CRLUnusableError struct {
	Issuer  string // the issuer's subject
	Subject string // the subject of the certificate whose status is unknown
	Reason  string // why the last of them cannot be used
}

func (e *CRLUnusableError) Error() string {
	return fmt.Sprintf("no CRL of the issuer %q that can be used (%s), so the revocation status of %q is unknown", e.Issuer, e.Reason, e.Subject)
}

// newestCRL returns the newest of crls, an issuer's CRLs (latest thisUpdate,
// then highest CRL number): a file holding an old CRL before a newer one
// of the same CA must not have the old one decide, which would ignore the
// revocations only the newer one lists. A CRL with a critical extension
// this code does not process (a delta CRL, a partitioned one) is never
// used (RFC 5280, 5.2): a delta CRL, newer than its base and listing only
// the latest revocations, would hide the base's. Nor is a CRL dated after
// now (beyond CRLClockSkew): signed by a CA with a wrong clock, it would
// be the newest until that date and hide every CRL issued meanwhile.
// Neither decides, but what each lists is still revoked (checkCRL).
// With no CRL returned, unusable says why the issuer's CRLs, if any,
// cannot be used.
func newestCRL(crls []*x509.RevocationList, now time.Time) (best *x509.RevocationList, unusable string) {
	for _, crl := range crls {
		if why := unusableCRL(crl, now); why != "" {
			unusable = why
			continue
		}
		if best == nil || crl.ThisUpdate.After(best.ThisUpdate) ||
			crl.ThisUpdate.Equal(best.ThisUpdate) && crl.Number != nil && (best.Number == nil || crl.Number.Cmp(best.Number) > 0) {
			best = crl
		}
	}
	if best != nil {
		unusable = ""
	}
	return best, unusable
}

// unusableCRL says why crl cannot decide at now (newestCRL), or "" if
// it can.
func unusableCRL(crl *x509.RevocationList, now time.Time) string {
	if !processed(crl) {
		return "it has a critical extension PKI mode does not process: a delta or partitioned CRL"
	}
	if crl.ThisUpdate.After(now.Add(CRLClockSkew)) {
		return fmt.Sprintf("it is dated in the future, thisUpdate %s", crl.ThisUpdate.Format(time.RFC3339))
	}
	return ""
}
