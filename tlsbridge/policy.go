package tlsbridge

import "crypto/tls"

// The TLS policy (docs/design.md, principle 7): TLS 1.2 at least, 1.3 preferred;
// in TLS 1.2 only ECDHE key exchange with AEAD ciphers; Go's default
// key-exchange groups, post-quantum hybrid included. Go itself offers no
// SHA-1 signatures in TLS 1.2 (since Go 1.25) and never renegotiates as a
// server; clients here refuse renegotiation too.
//
// TLS 1.3 suites are not configurable in Go, and all of them are AEAD.

// cipherSuites12 are the TLS 1.2 suites keytool allows.
var cipherSuites12 = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// applyPolicy sets the policy on c, which policyConflicts accepted: a
// stricter choice of the caller's (TLS 1.3 only, some of the allowed
// suites) is kept, never reset to the policy's minimum; a Renegotiation
// the caller set is a conflict, so the one set here replaces nothing.
func applyPolicy(c *tls.Config) {
	c.MinVersion = max(c.MinVersion, tls.VersionTLS12)
	if len(c.CipherSuites) == 0 {
		c.CipherSuites = cipherSuites12
	}
	c.Renegotiation = tls.RenegotiateNever
}
