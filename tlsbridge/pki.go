package tlsbridge

import (
	"bytes"
	"crypto/x509"
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
)

// PKI is the optional CA mode (docs/design.md, "Decisions"): peers whose key is
// not pinned may be accepted because their certificate chains to a CA in
// ca.pem and is not revoked by crl.pem. Pins come first: a pinned key is
// decided by its pin alone, and the CA is consulted only for keys without
// one.
//
// ca.pem and crl.pem are trust files like any other (docs/design.md, "One
// file-trust rule"): they are read with the strict-modes rule of package
// trustfile — the file, a link's target and every directory up to the
// home must belong to root or this process's user and not be writable by
// group or others — since whoever can add a CA to ca.pem can let any
// client in.
//
// The files are checked again at most once a second, at handshakes: a
// change of content, owner or mode of a file (its size, times, inode,
// mode and owner) or of a directory above it is noticed, so a new CRL
// applies without a restart, and a ca.pem made writable by others stops
// counting. If a file cannot be read, fails the rule or cannot be parsed,
// every CA-based decision fails, naming the file, until it is fixed: a
// CRL that cannot be read revokes nothing only in attackers' dreams.
type PKI struct {
	opts PKIOptions

	state     atomic.Pointer[pkiState]
	mu        sync.Mutex // serialises reloads
	checkedAt atomic.Int64
}

// PKIOptions say where PKI mode's files are.
type PKIOptions struct {
	// CA is the CA bundle (PEM certificates). Required.
	CA string
	// CRL, if set, holds the CRLs issued by the CAs of the bundle (PEM or
	// DER); every CRL must be signed by one of them. With a CRL file, a
	// certificate whose issuer has no CRL in it is refused.
	CRL string
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

type pkiState struct {
	roots   *x509.CertPool
	cas     int
	crls    []*x509.RevocationList
	stamp   pkiStamp
	loadErr error
}

// pkiStamp is what the periodic check compares: each file's stat key, and
// whether the rule held, with its error, so that a directory above a file
// becoming writable (which the file's own stat does not show) is noticed.
type pkiStamp struct {
	ca, crl trustfile.Stamp
	rule    string
}

// PKIFileError means a file of PKI mode cannot be used: it cannot be
// read, fails the strict-modes rule (Err is a *trustfile.PermissionError
// or *trustfile.LinkError), or does not hold what it should. Every
// CA-based decision fails until it is fixed.
type PKIFileError struct {
	File string // the CA bundle or the CRL file
	Err  error
}

func (e *PKIFileError) Error() string {
	return fmt.Sprintf("tlsbridge: PKI mode: %s: %v", e.File, e.Err)
}

func (e *PKIFileError) Unwrap() error { return e.Err }

// LoadPKI reads the CA bundle and, if opts.CRL is set, the CRLs issued by
// those CAs, under the strict-modes rule.
func LoadPKI(opts PKIOptions) (*PKI, error) {
	if opts.CA == "" {
		return nil, errors.New("tlsbridge: PKIOptions.CA is required")
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

// rule is the strict-modes rule for file.
func (p *PKI) rule(file string) trustfile.Rule {
	top := p.opts.Home
	if top == "" {
		top = filepath.Dir(file)
	}
	return trustfile.Rule{Top: top, Off: p.opts.NoStrictModes}
}

// stamp stats the files and checks the rule on them, without reading them.
func (p *PKI) stamp() pkiStamp {
	var s pkiStamp
	var ruleErrs []string
	check := func(file string) trustfile.Stamp {
		if file == "" {
			return trustfile.Stamp{}
		}
		lfi, err := os.Lstat(file)
		if err != nil {
			ruleErrs = append(ruleErrs, err.Error())
			return trustfile.Stamp{}
		}
		fi, err := os.Stat(file)
		if err != nil {
			ruleErrs = append(ruleErrs, err.Error())
			return trustfile.StampOf(lfi)
		}
		if err := p.rule(file).CheckFile(file, fi, lfi.Mode()&fs.ModeSymlink != 0, false); err != nil {
			ruleErrs = append(ruleErrs, err.Error())
		}
		return trustfile.StampOf(fi)
	}
	s.ca = check(p.opts.CA)
	s.crl = check(p.opts.CRL)
	s.rule = strings.Join(ruleErrs, "\n")
	return s
}

func (p *PKI) load() *pkiState {
	// The stamp is taken before reading: a change while reading makes the
	// next check differ, and read again.
	st := &pkiState{stamp: p.stamp()}
	fail := func(file string, err error) *pkiState {
		st.loadErr = &PKIFileError{File: file, Err: err}
		return st
	}
	data, _, err := p.rule(p.opts.CA).ReadFile(p.opts.CA)
	if err != nil {
		return fail(p.opts.CA, err)
	}
	var cas []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return fail(p.opts.CA, err)
		}
		cas = append(cas, c)
	}
	if len(cas) == 0 {
		return fail(p.opts.CA, errors.New("holds no CERTIFICATE"))
	}
	st.roots = x509.NewCertPool()
	for _, c := range cas {
		st.roots.AddCert(c)
	}
	st.cas = len(cas)
	if p.opts.CRL == "" {
		return st
	}
	data, _, err = p.rule(p.opts.CRL).ReadFile(p.opts.CRL)
	if err != nil {
		return fail(p.opts.CRL, err)
	}
	var ders [][]byte
	if bytes.Contains(data, []byte("-----BEGIN")) {
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type == "X509 CRL" {
				ders = append(ders, b.Bytes)
			}
		}
	} else {
		ders = [][]byte{data}
	}
	if len(ders) == 0 {
		return fail(p.opts.CRL, errors.New("holds no X509 CRL"))
	}
	for _, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return fail(p.opts.CRL, err)
		}
		signed := false
		for _, ca := range cas {
			if bytes.Equal(crl.RawIssuer, ca.RawSubject) && crl.CheckSignatureFrom(ca) == nil {
				signed = true
				break
			}
		}
		if !signed {
			return fail(p.opts.CRL, fmt.Errorf("a CRL is not signed by any CA in %s", p.opts.CA))
		}
		st.crls = append(st.crls, crl)
	}
	return st
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
	if p.stamp() != st.stamp {
		st = p.load()
		p.state.Store(st)
	}
	return st
}

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

// Verify checks a peer's certificate chain (leaf first) against the CA
// bundle, for the given usage and, if dnsName is not empty, host name, and
// then against the CRLs: a certificate of the chain listed by its issuer's
// CRL is refused, and so is a chain whose leaf's issuer has no current CRL
// when a CRL file is configured.
func (p *PKI) Verify(chain []*x509.Certificate, usage x509.ExtKeyUsage, dnsName string) error {
	st := p.current()
	if st.loadErr != nil {
		return st.loadErr
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{
		Roots: st.roots, Intermediates: inter, DNSName: dnsName,
		KeyUsages: []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return &CARefusedError{File: p.opts.CA, Err: err}
	}
	if p.opts.CRL == "" {
		return nil
	}
	now := time.Now()
	for _, ch := range chains {
		for i := 0; i+1 < len(ch); i++ {
			cert, issuer := ch[i], ch[i+1]
			crl := st.crlFor(issuer)
			if crl == nil {
				if i == 0 {
					return &CARefusedError{File: p.opts.CRL, Err: fmt.Errorf("no CRL for the issuer %q of %q, so its revocation status is unknown", issuer.Subject, cert.Subject)}
				}
				continue
			}
			if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
				return &CARefusedError{File: p.opts.CRL, Err: fmt.Errorf("the CRL of %q expired at %s", issuer.Subject, crl.NextUpdate.Format(time.RFC3339))}
			}
			for _, rc := range crl.RevokedCertificateEntries {
				if rc.SerialNumber.Cmp(cert.SerialNumber) == 0 {
					return &RevokedCertificateError{Subject: cert.Subject.String(), Serial: cert.SerialNumber.String(), File: p.opts.CRL}
				}
			}
		}
	}
	return nil
}

// crlFor returns the newest CRL of issuer in the CRL file (latest
// thisUpdate, then highest CRL number): a file holding an old CRL before
// a newer one of the same CA must not have the old one decide, which would
// ignore the revocations only the newer one lists.
func (st *pkiState) crlFor(issuer *x509.Certificate) *x509.RevocationList {
	var best *x509.RevocationList
	for _, crl := range st.crls {
		if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) || crl.CheckSignatureFrom(issuer) != nil {
			continue
		}
		if best == nil || crl.ThisUpdate.After(best.ThisUpdate) ||
			crl.ThisUpdate.Equal(best.ThisUpdate) && crl.Number != nil && (best.Number == nil || crl.Number.Cmp(best.Number) > 0) {
			best = crl
		}
	}
	return best
}
