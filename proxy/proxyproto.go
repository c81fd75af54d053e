package proxy

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"

	"github.com/keytool/keytool/internal/dnsname"
	"github.com/keytool/keytool/tlsbridge"
)

// The PROXY protocol, version 2 (HAProxy's specification,
// "The PROXY protocol", section 2.2): a binary header the proxy writes on
// the target connection before any byte of the client's, telling the
// target who connected — the client's address and port, the address it
// connected to — and, in TLVs, what the TLS handshake established.
// docs/proxy.md lists the TLVs keytool sends.

// proxyV2Sig is the header's fixed first twelve bytes.
var proxyV2Sig = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// Header fields.
const (
	proxyV2Cmd   = 0x21 // version 2, command PROXY
	proxyV2TCP4  = 0x11 // AF_INET, STREAM
	proxyV2TCP6  = 0x21 // AF_INET6, STREAM
	proxyV2Local = 0x20 // version 2, command LOCAL (no address follows)
)

// TLV types of the specification, and keytool's own in its custom range
// (0xE0–0xEF).
const (
	PP2TypeAuthority     = 0x02 // the server name the client asked for (SNI)
	PP2TypeSSL           = 0x20 // the TLS connection: client flags, verify result, sub-TLVs
	PP2SubtypeSSLVersion = 0x21 // "TLSv1.3"
	PP2SubtypeSSLCipher  = 0x23 // the cipher suite's IANA name
	PP2SubtypeSSLSigAlg  = 0x24 // the client certificate's signature algorithm
	PP2SubtypeSSLKeyAlg  = 0x25 // the client key's algorithm
	PP2TypeFingerprint   = 0xE0 // keytool: the client key's SPKI fingerprint, "SHA256:…"
	PP2TypeName          = 0xE1 // keytool: the authorized-keys entry's name (absent for a client admitted by its CA)
	PP2TypeKeyID         = 0xE2 // keytool: the client key's libtrust key ID
	PP2ClientSSL         = 0x01 // PP2_TYPE_SSL client field: the client connected over TLS
	PP2ClientCertConn    = 0x02 // … and presented a certificate on this connection
)

// tlv is one type-length-value of the header.
type tlv struct {
	typ   byte
	value string
}

// appendTLV appends one TLV to b.
func appendTLV(b []byte, typ byte, value string) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

// proxyHeader is the PROXY protocol v2 header of a connection from src
// to dst, with tlvs. Addresses of two families are both sent as IPv6 (an
// IPv4 one mapped); an invalid address makes a LOCAL header, which
// tells the target to use the connection's own addresses.
func proxyHeader(src, dst netip.AddrPort, tlvs []tlv) []byte {
	n := 0
	for _, t := range tlvs {
		n += 3 + len(t.value)
	}
	b := append(make([]byte, 0, 16+36+n), proxyV2Sig[:]...)
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	var addrs []byte
	switch {
	case !s.IsValid() || !d.IsValid():
		b = append(b, proxyV2Local, 0)
	case s.Is4() && d.Is4():
		b = append(b, proxyV2Cmd, proxyV2TCP4)
		addrs = append(append(addrs, s.AsSlice()...), d.AsSlice()...)
	default:
		b = append(b, proxyV2Cmd, proxyV2TCP6)
		s16, d16 := s.As16(), d.As16()
		addrs = append(append(addrs, s16[:]...), d16[:]...)
	}
	if addrs != nil {
		addrs = binary.BigEndian.AppendUint16(addrs, src.Port())
		addrs = binary.BigEndian.AppendUint16(addrs, dst.Port())
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)+n))
	b = append(b, addrs...)
	for _, t := range tlvs {
		b = appendTLV(b, t.typ, t.value)
	}
	return b
}

// peerTLVs are the TLVs that tell the target who the client is: the SNI,
// PP2_TYPE_SSL with the TLS version, cipher and the key's algorithms, and
// keytool's fingerprint, entry name and key ID.
func peerTLVs(cs *tls.ConnectionState, peer *tlsbridge.Peer, fingerprint string) []tlv {
	tlvs := make([]tlv, 0, 5)
	// The server name is the client's, and crypto/tls checks nothing of
	// it but a trailing dot: up to 64 KiB of any bytes — CR, LF, NUL,
	// bytes that are not UTF-8. A target may copy the authority into a
	// header or a log line of its own (HAProxy's fc_pp_authority, nginx's
	// $proxy_protocol_tlv_authority), so only a name that can be a host's
	// (dnsname.Valid: letters, digits, '-', '_' and dots, 253 bytes at
	// most, which also keeps the header's 16-bit length from wrapping) is
	// sent; any other is left out, as if the client had sent none.
	if dnsname.Valid(cs.ServerName) {
		tlvs = append(tlvs, tlv{PP2TypeAuthority, cs.ServerName})
	}
	ssl := make([]byte, 0, 96)
	ssl = append(ssl, PP2ClientSSL|PP2ClientCertConn, 0, 0, 0, 0) // verify 0: the certificate was accepted
	ssl = appendTLV(ssl, PP2SubtypeSSLVersion, tlsVersionName(cs.Version))
	ssl = appendTLV(ssl, PP2SubtypeSSLCipher, cipherSuiteName(cs.CipherSuite))
	if len(cs.PeerCertificates) > 0 {
		leaf := cs.PeerCertificates[0]
		ssl = appendTLV(ssl, PP2SubtypeSSLSigAlg, leaf.SignatureAlgorithm.String())
		ssl = appendTLV(ssl, PP2SubtypeSSLKeyAlg, leaf.PublicKeyAlgorithm.String())
	}
	tlvs = append(tlvs, tlv{PP2TypeSSL, string(ssl)}, tlv{PP2TypeFingerprint, fingerprint})
	if name := peer.Name(); name != "" && len(name) <= maxNameTLV {
		tlvs = append(tlvs, tlv{PP2TypeName, name})
	}
	return append(tlvs, tlv{PP2TypeKeyID, peer.KeyID()})
}

// cipherSuiteName is tls.CipherSuiteName without its allocations (it
// builds the list of suites at each call).
func cipherSuiteName(id uint16) string {
	if name, ok := cipherSuiteNames()[id]; ok {
		return name
	}
	return tls.CipherSuiteName(id)
}

var cipherSuiteNames = sync.OnceValue(func() map[uint16]string {
	m := map[uint16]string{}
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		m[s.ID] = s.Name
	}
	return m
})

// maxNameTLV bounds the entry name sent to the target: a longer one is
// left out (the fingerprint still says who it is), so that the header
// stays far below its 64 KiB limit.
const maxNameTLV = 1024

// tlsVersionName is the version as OpenSSL and HAProxy write it.
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	}
	return tls.VersionName(v)
}

// addrPort is a connection end's address and port (zero if it is not IP).
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
