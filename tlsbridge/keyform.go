package tlsbridge

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strconv"

	"github.com/keytool/keytool/jwk"
)

// peerKeySum returns the SPKI hash of cert's key — the peer's identity to
// every store — and refuses a certificate that holds its key in a DER
// form other than the key's one (*KeyFormError). crypto/x509 reads a key
// from other forms too — a BIT STRING with padding bits is right-aligned
// (BitString.RightAlign), elements after the algorithm's parameters or
// after the BIT STRING are ignored — and crypto/tls verifies the
// handshake with the key it read: from another form, the holder of a revoked key would pass
// as an unknown key, under another hash, to the revocation check — a
// host under Insecure, a client under AllowUnknown. One key, one identity
// (jwk's marshalSPKI refuses a negative RSA modulus for the same reason).
// Refused rather than hashed in its one form, so that the hash of the
// certificate's own bytes, which the connection's other users take
// (live revocation, the proxy's headers, enrollment), is the key's.
// who names the peer for the error ("host ADDR", "client ADDR").
func peerKeySum(cert *x509.Certificate, who string) ([32]byte, error) {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	der, err := keyDER(cert, who)
	if err != nil {
		return sum, err
	}
	if !bytes.Equal(der, cert.RawSubjectPublicKeyInfo) {
		return sum, &KeyFormError{Peer: who, Presented: jwk.FormatFingerprint(sum), Fingerprint: jwk.FormatFingerprint(sha256.Sum256(der))}
	}
	return sum, nil
}

// caKeySum returns the SPKI hash of a CA certificate's key, from the
// key's one DER form whatever form the certificate holds it in: a CA's
// key is looked up in the revocations only (revokedInChain), and a
// revoked key is revoked in every form.
func caKeySum(cert *x509.Certificate) ([32]byte, error) {
	der, err := keyDER(cert, "CA "+strconv.Quote(cert.Subject.String()))
	return sha256.Sum256(der), err
}

// keyDER is the one DER form of cert's key: jwk's, built by hand for the
// keys keytool reads (jwk.TestSPKIMatchesX509: crypto/x509's), else
// crypto/x509's, 10 times slower, for the others a CA may vouch for (an
// RSA key under 2,048 bits, another curve).
func keyDER(cert *x509.Certificate, who string) ([]byte, error) {
	if der, err := jwk.SPKIOf(cert.PublicKey); err == nil {
		return der, nil
	}
	der, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil {
		return nil, &KeyFormError{Peer: who, Presented: jwk.FormatFingerprint(sha256.Sum256(cert.RawSubjectPublicKeyInfo)), Err: err}
	}
	return der, nil
}

// KeyFormError means a peer's certificate holds its key in a DER form
// other than the key's one (Fingerprint is the key's, Presented the hash
// of the form presented), or holds a key that has no DER form (Err): the
// certificate is refused, whatever the key.
type KeyFormError struct {
	Peer        string // "host ADDR" (the address dialled), "client ADDR", "CA SUBJECT"
	Fingerprint string
	Presented   string
	Err         error
}

func (e *KeyFormError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("tlsbridge: the certificate of %s holds a key (SPKI %s) that has no DER form: %v", e.Peer, e.Presented, e.Err)
	}
	return fmt.Sprintf("tlsbridge: the certificate of %s holds key %s in another DER form (SPKI %s): refused, a key has one form and one fingerprint", e.Peer, e.Fingerprint, e.Presented)
}

func (e *KeyFormError) Unwrap() error { return e.Err }
