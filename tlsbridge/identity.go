package tlsbridge

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
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

// Identity is a private key together with the certificate that presents it
// in TLS handshakes: a self-signed certificate made by SelfSigned, or, in
// PKI mode, a CA-issued certificate for the same key.
type Identity struct {
	Key         *jwk.Key
	Certificate tls.Certificate
}

// CertOptions are what a self-signed identity certificate says besides the
// key. Peers that pin the key for an address ignore all of it; it matters
// to clients that pinned the key without an address (they check that the
// certificate names the host they dialled: knownhosts.WithCertificate)
// and to software that checks names, such as curl and browsers given a
// per-key bundle. Empty, the names saved in the key (jwk.AttrNames) are
// used.
type CertOptions struct {
	DNSNames    []string
	IPAddresses []net.IP
	// Next are the keys the certificate announces as the identity's next
	// keys (OIDSignedNextKeys; docs/design.md, "Announced rotation"):
	// private keys, each of which signs its announcement, of a kind no
	// weaker than the identity's (CheckNextKey).
	Next []*jwk.Key
}

// NamesOptions sorts names (DNS names and IP addresses, an IPv6 one with
// or without brackets) into CertOptions.
func NamesOptions(names ...string) CertOptions {
	var opts CertOptions
	for _, name := range names {
		if ip := net.ParseIP(strings.Trim(name, "[]")); ip != nil {
			opts.IPAddresses = append(opts.IPAddresses, ip)
		} else {
			opts.DNSNames = append(opts.DNSNames, name)
		}
	}
	return opts
}

// names are the DNS names and IP addresses opts holds, as text.
func (opts CertOptions) names() []string {
	out := slices.Clone(opts.DNSNames)
	for _, ip := range opts.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// notAfter is the end of validity of self-signed identity certificates:
// RFC 5280's "no well-defined expiration date" (section 4.1.2.5). Trust is
// in the key, not the certificate, and nothing should expire under a
// running daemon; OpenSSL, curl and Go all accept this date.
var notAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// KeyURI returns the URI that identity certificates carry as a subject
// alternative name to identify their key: "urn:keytool:spki-sha256:" and
// the SPKI hash in base64url.
func KeyURI(k *jwk.Key) *url.URL {
	sum := k.SPKIHash()
	return &url.URL{Scheme: "urn", Opaque: "keytool:spki-sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])}
}

// subjectFor is the subject of a key's identity certificate.
func subjectFor(k *jwk.Key) pkix.Name {
	return pkix.Name{CommonName: k.KeyID(), Organization: []string{"keytool"}}
}

// issuerFor is the issuer named by a key's identity certificate, and the
// subject of the per-key CA certificate made for the key (see bundle.go).
// It differs from the subject on purpose: OpenSSL trusts a self-issued
// certificate only if that exact certificate is in its store, while a
// certificate naming another issuer chains to any CA certificate of that
// name whose key verifies it — and the CA certificate holds the same key
// that signed the identity certificate.
func issuerFor(k *jwk.Key) pkix.Name {
	return pkix.Name{CommonName: k.KeyID(), Organization: []string{"keytool"}, OrganizationalUnit: []string{"key"}}
}

// SelfSigned makes the identity certificate of a private key, signed by
// that key: a random serial, the key ID as subject, the given DNS names and
// IPs plus a URI naming the key (KeyURI), valid from an hour ago (for clock
// skew) until 9999-12-31. It is usable for both server and client
// authentication. Its issuer name is issuerFor(k), not its subject, so that
// per-key CA bundles work with OpenSSL (see issuerFor).
func SelfSigned(k *jwk.Key, opts CertOptions) (*x509.Certificate, error) {
	if !k.IsPrivate() {
		return nil, errors.New("a certificate needs the private key")
	}
	tmpl, err := certTemplate(subjectFor(k))
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.DNSNames = opts.DNSNames
	tmpl.IPAddresses = opts.IPAddresses
	tmpl.URIs = []*url.URL{KeyURI(k)}
	if len(opts.Next) > 0 {
		ext, err := nextKeysExtension(k, opts.Next)
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = []pkix.Extension{ext}
	}
	issuer := &x509.Certificate{Subject: issuerFor(k)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, k.Public(), k.Signer())
	if err != nil {
		return nil, fmt.Errorf("making the identity certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// randomSerial returns a random certificate serial number of 127 bits.
func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// certTemplate returns what every certificate keytool makes shares: a
// random 127-bit serial, the subject, basic constraints, and a validity
// from an hour ago (clock skew) until notAfter.
func certTemplate(subject pkix.Name) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             time.Now().Add(-time.Hour).Truncate(time.Second),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
	}, nil
}

// NewIdentity pairs a private key with its self-signed certificate, which
// names what opts names or, if opts names nothing, the names saved in the
// key (jwk.AttrNames, written by SaveNames).
func NewIdentity(k *jwk.Key, opts CertOptions) (*Identity, error) {
	if len(opts.DNSNames) == 0 && len(opts.IPAddresses) == 0 {
		names, err := k.Attrs.List(jwk.AttrNames)
		if err != nil {
			return nil, fmt.Errorf("tlsbridge: the identity's names: %w", err)
		}
		named := NamesOptions(names...)
		opts.DNSNames, opts.IPAddresses = named.DNSNames, named.IPAddresses
	}
	cert, err := SelfSigned(k, opts)
	if err != nil {
		return nil, err
	}
	return &Identity{Key: k, Certificate: tls.Certificate{
		Certificate: [][]byte{cert.Raw},
		PrivateKey:  k.Signer(),
		Leaf:        cert,
	}}, nil
}

// LoadIdentity reads the private key at keyFile and, if certFile is not
// empty, a CA-issued certificate chain for it (PKI mode); otherwise it makes
// a self-signed certificate. The key is read as ssh -i reads one given by
// name (jwk.ReadPrivateKeyFile: its mode, not its owner, a link's target
// or the directories above it); a home's key is LoadHomeIdentity's, which
// reads it as the trust input it is (ReadHomeKey).
//
// A public half beside the key under the name keytool gen -i gives it
// (pub_NAME.* beside NAME.key: homedir.PublicBeside) must hold its public
// key, as a home's pub_key.* must: one holding another key, several or
// none is refused (*PublicKeyError), not rewritten (checkPublicBeside).
func LoadIdentity(keyFile, certFile string, opts CertOptions) (*Identity, error) {
	k, err := jwk.ReadPrivateKeyFile(keyFile)
	if err != nil {
		return nil, err
	}
	if k, err = checkPublicBeside(keyFile, k); err != nil {
		return nil, err
	}
	return presentKey(k, certFile, opts)
}

// presentKey is the identity of the private key k: with the certificate
// chain in certFile, or self-signed if certFile is empty.
func presentKey(k *jwk.Key, certFile string, opts CertOptions) (*Identity, error) {
	if certFile == "" {
		return NewIdentity(k, opts)
	}
	// The certificate is read like every trust file: bounded, never
	// blocking, and refused when someone else could have written it (a
	// certificate for another key is refused below in any case).
	data, err := readCertFile(certFile)
	if err != nil {
		return nil, err
	}
	return NewIdentityWithChain(k, certFile, data)
}

// readCertFile reads the identity's certificate chain, certFile, as a
// trust file. One that holds a private key besides — a certificate and
// its key in one file, as HAProxy takes them — is a private key file, and
// must not be readable by group or others (*jwk.PermissionError), as
// key.* must not: only its CERTIFICATE blocks are read, so the key in it
// would be left readable by every user without a word (found by review,
// 2026-12-05).
func readCertFile(certFile string) ([]byte, error) {
	data, fi, err := trustfile.Rule{Top: filepath.Dir(certFile)}.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tlsbridge: the identity's certificate %s: %w", certFile, err)
	}
	if fi.Mode().Perm()&0o077 != 0 && holdsPrivateKeyBlock(data) {
		return nil, &jwk.PermissionError{File: certFile, Mode: uint32(fi.Mode().Perm())}
	}
	return data, nil
}

// holdsPrivateKeyBlock reports whether PEM data holds a private key block
// of any kind: PRIVATE KEY, EC, RSA, ENCRYPTED or OPENSSH PRIVATE KEY.
func holdsPrivateKeyBlock(data []byte) bool {
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			return true
		}
	}
}

// LoadHomeIdentity loads the identity of a keytool home: the single
// key.{json,jwk,pem} in it, presented with home/cert.pem if that file
// exists (PKI mode), else with a self-signed certificate, which announces
// the home's next key (key.next.*) if it has one.
//
// Its public halves (pub_key.*) must hold the identity's public key, the
// one its peers are to trust: one that holds another key, several or
// none is refused (*PublicKeyError), save what a rotation that stopped
// before its last step leaves (pub_key.* the previous identity's, kept
// as key.old.*, or pub_key.next.* the identity's with no next key), which
// the load finishes as RotateHome would have, under the lock of the
// identity's writers (checkPublicHalves) — or, where this user may not
// write the home, loads the identity and leaves to a writer. The public
// halves of its next key (pub_key.next.*) must hold the next key's
// public key as well, and are refused (*PublicKeyError, Next) where they
// hold another, or, in a home with no next key, another than the
// identity's.
func LoadHomeIdentity(home string, opts CertOptions) (*Identity, error) {
	return loadHomeIdentity(home, opts, false)
}

// loadHomeIdentity is LoadHomeIdentity; locked says that the caller holds
// the lock of the identity's writers (LockIdentity), which a second take
// in one process would wait for.
func loadHomeIdentity(home string, opts CertOptions, locked bool) (*Identity, error) {
	keyFile, k, err := readIdentity(home)
	if err != nil {
		return nil, err
	}
	if k, err = checkPublicHalves(home, keyFile, k, locked); err != nil {
		return nil, err
	}
	certFile, err := HomeCertFile(homedir.Dir(home).Cert())
	if err != nil {
		return nil, err
	}
	if certFile == "" && len(opts.Next) == 0 {
		// A CA-issued certificate cannot carry the announcement: the CA,
		// not the key, signed it (AnnouncedKeys).
		next, err := loadNextKey(home)
		if err != nil {
			return nil, err
		}
		if next != nil {
			// A next key weaker than the identity is refused here, as
			// its peers would refuse it (CheckNextKey): loudly, at
			// load, rather than announced in vain.
			if err := CheckNextKey(k, next); err != nil {
				return nil, fmt.Errorf("tlsbridge: the home's next key cannot be announced: %w; remove it or make another (key.next.*)", err)
			}
			opts.Next = []*jwk.Key{next}
		}
	}
	return presentKey(k, certFile, opts)
}

// readIdentity reads the home's identity: its file and its key; a home
// without one is said as noIdentity says it.
func readIdentity(home string) (string, *jwk.Key, error) {
	keyFile, err := jwk.FindIdentity(home)
	var none *jwk.NoIdentityError
	if errors.As(err, &none) {
		return "", nil, noIdentity(home, err)
	}
	if err != nil {
		return "", nil, err
	}
	k, err := ReadHomeKey(home, keyFile)
	if err != nil {
		return "", nil, err
	}
	return keyFile, k, nil
}

// NextKeyWithoutIdentityError means a home holds a next key (key.next.*)
// and no identity: the identity was removed (by hand, or by a tool that
// knows nothing of next keys) after it announced the next key to its
// peers. A new identity would be one no peer was told of, made silently
// beside the key they were, so none is made (LoadOrGenerateHomeIdentity)
// until the home's owner says which: the next key made the identity, or
// a new identity that announces it, or the next key removed
// (docs/cli.md, gen).
type NextKeyWithoutIdentityError struct{ Home, File string }

func (e *NextKeyWithoutIdentityError) Error() string {
	return fmt.Sprintf("tlsbridge: no identity in %s, but a next key, %s, which its peers may have been told comes next: no identity is made beside it", e.Home, e.File)
}

// CertKeyError means the home's CA-issued certificate chain (cert.pem) is
// for another key than the identity's — or, Key empty, that the home has
// no identity, and a new key would not fit it either.
type CertKeyError struct {
	File    string // the chain: cert.pem
	CertKey string // the fingerprint of the key its leaf certifies
	Key     string // the identity's fingerprint; "" when the home has none
}

func (e *CertKeyError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("tlsbridge: %s is a certificate for key %s, and the home has no identity: a new key would not fit it", e.File, e.CertKey)
	}
	return fmt.Sprintf("tlsbridge: %s is a certificate for key %s, but the identity is key %s: the certificate issued for the identity goes there, or none (a self-signed one is presented then)", e.File, e.CertKey, e.Key)
}

// noIdentity is LoadHomeIdentity's error for a home without an identity
// (none, FindIdentity's *jwk.NoIdentityError), unless the home holds what
// was made for an identity that a new one would not be: a next key its
// peers may have learned (*NextKeyWithoutIdentityError), or a CA-issued
// cert.pem, which certifies another key (*CertKeyError). Those are not
// "no identity", so LoadOrGenerateHomeIdentity makes none beside them.
func noIdentity(home string, none error) error {
	next, err := jwk.FindNextKey(home)
	if err != nil {
		return err
	}
	if next != "" {
		return &NextKeyWithoutIdentityError{Home: home, File: next}
	}
	certFile, err := HomeCertFile(homedir.Dir(home).Cert())
	if err != nil || certFile == "" {
		return cmp.Or(err, none)
	}
	data, err := readCertFile(certFile)
	if err != nil {
		return err
	}
	_, _, lk, err := parseChain(certFile, data)
	if err != nil {
		return err
	}
	return &CertKeyError{File: certFile, CertKey: lk.Fingerprint()}
}

// HomeCertFile returns certFile, the identity's CA-issued certificate
// (cert.pem), if it is there, and "" if it is not. Only a name that is not
// there at all is no certificate: a link whose target is gone (a chain
// linked from where a renewal tool keeps it, removed meanwhile) is there,
// and reading it says why it does not load, as for every trust input's
// dangling link. Taken for no cert.pem (os.Stat fails through it), the
// identity was presented with a self-signed certificate instead, which
// every client verifying through the CA refuses, and a watching server
// reloaded to it rather than keep the chain it presented (found by review,
// 2026-12-05).
func HomeCertFile(certFile string) (string, error) {
	switch _, err := os.Lstat(certFile); {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("tlsbridge: the identity's certificate %s: %w", certFile, err)
	}
	return certFile, nil
}

// ReadHomeKey reads a private key of the keytool home: its identity
// (key.*), its next key (key.next.*) or one a rotation kept (key.old.*).
// Each is a trust input like cert.pem beside it: whoever can write the
// home (or owns the key file) can put a key of their own in its place,
// which a process running as root reads even at mode 0600, and the home
// would then present, announce and hand out (`keytool pub`) a key someone
// else holds. So every such key is read as the other trust files are
// (trustfile.Rule.ReadFile: the file, a link's target and the directories
// up to the home) and parsed from the bytes that read checked, never read
// again: a file put in its place meanwhile would be loaded unchecked.
func ReadHomeKey(home, file string) (*jwk.Key, error) {
	data, fi, err := readHomeKeyFile(trustfile.Rule{Top: home}, file)
	if err != nil {
		return nil, fmt.Errorf("tlsbridge: %s %s: %w", homeKeyRole(file), file, err)
	}
	k, err := jwk.ParsePrivateKeyFile(file, data, fi)
	if err != nil {
		// jwk's errors name the file already; the role is what they lack.
		return nil, fmt.Errorf("tlsbridge: %s: %w", homeKeyRole(file), err)
	}
	return k, nil
}

// homeKeyRole names what a private key file of the home is, for errors.
func homeKeyRole(file string) string {
	name := filepath.Base(file)
	switch {
	case slices.Contains(homedir.NextNames(), name):
		return "the next key"
	case homedir.IsOld(name):
		return "the previous identity"
	case homedir.IsFound(name):
		return "a key a stopped rotation kept"
	}
	return "the identity"
}

// readHomeKeyFile is how ReadHomeKey reads and checks a key; tests
// replace the file right after it (TestHomeIdentityReadOnce).
var readHomeKeyFile = trustfile.Rule.ReadFile

// LoadOrGenerateHomeIdentity loads the identity of a keytool home as
// LoadHomeIdentity does or, when the home holds none, first makes one of
// type typ (jwk.EC256 if empty), as Docker's engine-keys proposal has an
// engine do on its first run. The key is written to key.json, mode 0600,
// and its public half to pub_key.json, mode 0644, both atomically; the
// home is created (0700) if it does not exist. generated reports whether
// this call made the key. The public halves an identity that is gone
// left (pub_key.*, pub_key.next.*) are removed first, so that, killed
// at any moment, the home holds its key with its own public half or
// none, or no key.
//
// Several processes may start on one empty home at once: key.json is
// created with jwk.CreateNew, whose last step is a hard link that never
// replaces a file, so exactly one of them writes it and the others load
// that key (the one that wrote it writes pub_key.json before it
// returns). An identity a keytool gen made meanwhile, in any format, is
// found under the lock of the identity's writers and loaded. None of them
// ever sees a partly written key, and a home never ends with two keys. An
// identity that exists but cannot be loaded (bad permissions, a file that
// does not parse, several identities) is an error: it is never replaced.
// Nor is one made beside what a home's identity leaves behind when it is
// removed by hand: a next key, which its peers may have been told comes
// next (*NextKeyWithoutIdentityError), or a CA-issued cert.pem, which
// would not fit a new key (*CertKeyError) — LoadHomeIdentity's errors for
// such a home, returned as they are.
func LoadOrGenerateHomeIdentity(home string, typ jwk.Type, opts CertOptions) (id *Identity, generated bool, err error) {
	id, err = LoadHomeIdentity(home, opts)
	var none *jwk.NoIdentityError
	if !errors.As(err, &none) {
		return id, false, err
	}
	if typ == "" {
		typ = jwk.EC256
	}
	k, err := jwk.Generate(typ)
	if err != nil {
		return nil, false, fmt.Errorf("tlsbridge: making an identity for %s: %w", home, err)
	}
	SaveNames(k, opts) // the names it is made with stay its names
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, false, fmt.Errorf("tlsbridge: making an identity for %s: %w", home, err)
	}
	// Written only where it is read from (ReadHomeKey's rule, up to the
	// home): a home another user owns or may write, or their link to a
	// directory of theirs, would take the private key where they choose.
	if err := (trustfile.Rule{Top: home}).CheckDir(home); err != nil {
		return nil, false, fmt.Errorf("tlsbridge: not writing an identity into %s: %w", home, err)
	}
	// The key and its public half are written under the lock of the
	// home's identity writers (LockIdentity), so that a keytool gen
	// --force at the same moment comes before or after both. Where it
	// cannot be had, the key is made all the same, and nothing says so:
	// this function has no place for a warning.
	unlock, _, err := LockIdentity(home)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	// Looked for again under the lock: a keytool gen that held it may
	// have made the identity meanwhile, in any format. The create-only
	// write below sees key.json alone, and key.json beside gen's key.pem
	// would be a home of two identities, which nothing loads (found by
	// review, 2026-12-05).
	// So may a next key or a cert.pem: looked at as LoadHomeIdentity
	// looks at them in a home without an identity.
	if id, err = loadHomeIdentity(home, opts, true); !errors.As(err, &none) {
		return id, false, err
	}
	h := homedir.Dir(home)
	keyFile := h.Identity()[0] // key.json
	// The public halves an identity that is gone left (pub_key.*, and
	// pub_key.next.*, a next key being none: noIdentity) go first, then
	// the key is written, then its public half — keytool gen's order
	// (docs/design.md, "Concurrent writers"). Killed in between, or the
	// machine lost, the home holds the new key with its own public half
	// or none, or no key: written after the key over the old one, as
	// they were, a kill between the two left key.json beside another
	// key's pub_key.json, a home every load refused (*PublicKeyError),
	// and a process that lost the create-only write below to a writer
	// that could not take the lock loaded that same pair and failed.
	// Where the lock could not be had, the removal may take the public
	// half of the key such a writer made meanwhile: the home then holds
	// its key and no public half, which loads.
	if _, err := atomicfile.Remove(slices.Concat(h.Public(), h.NextPublic())); err != nil {
		return nil, false, fmt.Errorf("tlsbridge: not making an identity: the public half of an identity that is gone could not be removed: %w", err)
	}
	switch err := jwk.WritePrivateKeyFile(keyFile, k, jwk.JWK, jwk.CreateNew); {
	case err == nil:
		generated = true
		if err := jwk.WritePublicKeyFile(h.Public()[0], k, jwk.JWK, jwk.Overwrite); err != nil {
			return nil, true, fmt.Errorf("tlsbridge: the new identity is in %s, but its public half could not be written: %w", keyFile, err)
		}
	case errors.Is(err, fs.ErrExist):
		// Another process made the identity first: use its key.
	default:
		return nil, false, fmt.Errorf("tlsbridge: writing a new identity: %w", err)
	}
	// Read back what is on disk, whoever wrote it: the one key of the home.
	id, err = loadHomeIdentity(home, opts, true)
	if err != nil {
		return nil, generated, err
	}
	return id, generated, nil
}

// SaveNames records the names opts holds in the private key k
// (jwk.AttrNames), so that its self-signed certificate names them
// whenever it is made (NewIdentity) — for a client that pinned the key
// without an address, the certificate must name the host it dials. The
// public half (jwk.Key.PublicHalf) leaves them out. Options naming nothing
// leave k as it is.
func SaveNames(k *jwk.Key, opts CertOptions) {
	names := opts.names()
	if len(names) == 0 {
		return
	}
	if k.Attrs == nil {
		k.Attrs = jwk.Attributes{}
	}
	k.Attrs.SetList(jwk.AttrNames, names)
}

// NewIdentityWithChain pairs a private key with a PEM certificate chain issued
// for it, leaf first. A leaf whose key is not k is refused: presenting it
// would fail every handshake, or worse, present someone else's identity.
func NewIdentityWithChain(k *jwk.Key, name string, pemData []byte) (*Identity, error) {
	chain, leaf, lk, err := parseChain(name, pemData)
	if err != nil {
		return nil, err
	}
	if !lk.Equal(k) {
		return nil, &CertKeyError{File: name, CertKey: lk.Fingerprint(), Key: k.Fingerprint()}
	}
	return &Identity{Key: k, Certificate: tls.Certificate{Certificate: chain, PrivateKey: k.Signer(), Leaf: leaf}}, nil
}

// parseChain reads a PEM certificate chain, leaf first: its CERTIFICATE
// blocks, the leaf and the key the leaf certifies.
func parseChain(name string, pemData []byte) (chain [][]byte, leaf *x509.Certificate, lk *jwk.Key, err error) {
	rest := pemData
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: no CERTIFICATE block", name)
	}
	if leaf, err = x509.ParseCertificate(chain[0]); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if lk, err = jwk.NewPublicKey(leaf.PublicKey); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return chain, leaf, lk, nil
}

// CertificatePEM returns the identity's certificate chain in PEM.
func (id *Identity) CertificatePEM() []byte {
	var buf bytes.Buffer
	for _, der := range id.Certificate.Certificate {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der}) // a bytes.Buffer does not fail
	}
	return buf.Bytes()
}
