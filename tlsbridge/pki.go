package tlsbridge

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// PKI is the optional CA mode (DESIGN.md, "Precedence"): peers whose key is
// not pinned may be accepted because their certificate chains to a CA in
// ca.pem and is not revoked by crl.pem. Pins come first: a pinned key is
// decided by its pin alone, and the CA is consulted only for keys without
// one.
//
// The files are read again when they change (checked at most once a
// second, at handshakes), so a new CRL applies without a restart. If a
// file cannot be read or parsed, every CA-based decision fails until it is
// fixed: a CRL that cannot be read revokes nothing only in attackers'
// dreams.
type PKI struct {
	caFile, crlFile string

	state     atomic.Pointer[pkiState]
	mu        sync.Mutex // serialises reloads
	checkedAt atomic.Int64
}

type pkiState struct {
	roots   *x509.CertPool
	crls    []*x509.RevocationList
	caMod   time.Time
	crlMod  time.Time
	loadErr error
}

// LoadPKI reads a CA bundle and, if crlFile is not empty, the CRLs issued by
// those CAs (PEM or DER). Every CRL must be signed by a CA of the bundle.
func LoadPKI(caFile, crlFile string) (*PKI, error) {
	p := &PKI{caFile: caFile, crlFile: crlFile}
	st := p.load()
	if st.loadErr != nil {
		return nil, st.loadErr
	}
	p.state.Store(st)
	p.checkedAt.Store(time.Now().UnixNano())
	return p, nil
}

func modTime(path string) time.Time {
	if fi, err := os.Stat(path); err == nil {
		return fi.ModTime()
	}
	return time.Time{}
}

func (p *PKI) load() *pkiState {
	st := &pkiState{caMod: modTime(p.caFile), crlMod: modTime(p.crlFile)}
	data, err := os.ReadFile(p.caFile)
	if err != nil {
		st.loadErr = fmt.Errorf("PKI mode: %w", err)
		return st
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
			st.loadErr = fmt.Errorf("PKI mode: %s: %w", p.caFile, err)
			return st
		}
		cas = append(cas, c)
	}
	if len(cas) == 0 {
		st.loadErr = fmt.Errorf("PKI mode: %s holds no CERTIFICATE", p.caFile)
		return st
	}
	st.roots = x509.NewCertPool()
	for _, c := range cas {
		st.roots.AddCert(c)
	}
	if p.crlFile == "" {
		return st
	}
	data, err = os.ReadFile(p.crlFile)
	if err != nil {
		st.loadErr = fmt.Errorf("PKI mode: %w", err)
		return st
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
		st.loadErr = fmt.Errorf("PKI mode: %s holds no X509 CRL", p.crlFile)
		return st
	}
	for _, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			st.loadErr = fmt.Errorf("PKI mode: %s: %w", p.crlFile, err)
			return st
		}
		signed := false
		for _, ca := range cas {
			if bytes.Equal(crl.RawIssuer, ca.RawSubject) && crl.CheckSignatureFrom(ca) == nil {
				signed = true
				break
			}
		}
		if !signed {
			st.loadErr = fmt.Errorf("PKI mode: %s: a CRL is not signed by any CA in %s", p.crlFile, p.caFile)
			return st
		}
		st.crls = append(st.crls, crl)
	}
	return st
}

// current returns the state, re-reading the files if they changed.
func (p *PKI) current() *pkiState {
	now := time.Now().UnixNano()
	if last := p.checkedAt.Load(); now-last < int64(time.Second) || !p.checkedAt.CompareAndSwap(last, now) {
		return p.state.Load()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state.Load()
	if !modTime(p.caFile).Equal(st.caMod) || !modTime(p.crlFile).Equal(st.crlMod) {
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
	return fmt.Sprintf("certificate %q (serial %s) is revoked by %s", e.Subject, e.Serial, e.File)
}

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
		return fmt.Errorf("PKI mode: the certificate does not verify against %s: %w", p.caFile, err)
	}
	if p.crlFile == "" {
		return nil
	}
	now := time.Now()
	for _, ch := range chains {
		for i := 0; i+1 < len(ch); i++ {
			cert, issuer := ch[i], ch[i+1]
			crl := st.crlFor(issuer)
			if crl == nil {
				if i == 0 {
					return fmt.Errorf("PKI mode: %s has no CRL for the issuer %q of %q: refusing, since its revocation status is unknown", p.crlFile, issuer.Subject, cert.Subject)
				}
				continue
			}
			if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
				return fmt.Errorf("PKI mode: the CRL of %q in %s expired at %s; install a current one", issuer.Subject, p.crlFile, crl.NextUpdate.Format(time.RFC3339))
			}
			for _, rc := range crl.RevokedCertificateEntries {
				if rc.SerialNumber.Cmp(cert.SerialNumber) == 0 {
					return &RevokedCertificateError{Subject: cert.Subject.String(), Serial: cert.SerialNumber.String(), File: p.crlFile}
				}
			}
		}
	}
	return nil
}

func (st *pkiState) crlFor(issuer *x509.Certificate) *x509.RevocationList {
	for _, crl := range st.crls {
		if bytes.Equal(crl.RawIssuer, issuer.RawSubject) && crl.CheckSignatureFrom(issuer) == nil {
			return crl
		}
	}
	return nil
}

var errNoPKI = errors.New("no CA configured")
