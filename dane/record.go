package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/keytool/keytool/internal/dnsname"
)

// The TLSA fields keytool reads (RFC 6698 section 2.1, RFC 7218 names).
const (
	UsageDANEEE = 3 // the end entity's own key or certificate: the one usage that names a key

	SelectorCert = 0 // the whole certificate
	SelectorSPKI = 1 // the SubjectPublicKeyInfo

	MatchFull   = 0 // the selected bytes themselves
	MatchSHA256 = 1 // their SHA-256
	MatchSHA512 = 2 // their SHA-512
)

// Record is one TLSA record's data.
type Record struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// RecordFor returns the DANE-EE record of a key (its DER
// SubjectPublicKeyInfo) with the matching type given (MatchSHA256,
// MatchSHA512 or MatchFull).
func RecordFor(spki []byte, matchingType uint8) (Record, error) {
	r := Record{Usage: UsageDANEEE, Selector: SelectorSPKI, MatchingType: matchingType}
	switch matchingType {
	case MatchSHA256:
		sum := sha256.Sum256(spki)
		r.Data = sum[:]
	case MatchSHA512:
		sum := sha512.Sum512(spki)
		r.Data = sum[:]
	case MatchFull:
		r.Data = bytes.Clone(spki)
	default:
		return Record{}, fmt.Errorf("dane: unknown matching type %d (0 full, 1 SHA-256, 2 SHA-512)", matchingType)
	}
	return r, nil
}

// String is the record's data in zone-file syntax: "3 1 1 HEX".
func (r Record) String() string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, strings.ToUpper(hex.EncodeToString(r.Data)))
}

// Usable reports whether the record names a key this package can match:
// usage 3 (DANE-EE), selector 1 (SPKI), matching type 0, 1 or 2. A
// record of another usage names a CA; selector 0 names a certificate,
// whose bytes change with every re-issue of the same key.
func (r Record) Usable() bool {
	return r.Usage == UsageDANEEE && r.Selector == SelectorSPKI && r.MatchingType <= MatchSHA512
}

// Matches reports whether the record is usable and names the key whose
// DER SubjectPublicKeyInfo is spki.
func (r Record) Matches(spki []byte) bool {
	if !r.Usable() {
		return false
	}
	want, err := RecordFor(spki, r.MatchingType)
	return err == nil && bytes.Equal(want.Data, r.Data)
}

// Name returns the owner name of the TLSA records for a TLS service at
// host and port over TCP, fully qualified: _PORT._tcp.HOST. (RFC 6698
// section 3). An IP address or an empty host has no such name: an
// *AddressError.
func Name(host, port string) (string, error) {
	bare := strings.TrimSuffix(host, ".")
	n, err := strconv.ParseUint(port, 10, 16)
	_, iperr := netip.ParseAddr(bare) // with a zone too: fe80::1%eth0
	switch {
	case bare == "":
		return "", &AddressError{Host: host, Port: port, Reason: "no host name"}
	case iperr == nil:
		return "", &AddressError{Host: host, Port: port, Reason: "an IP address has no TLSA name"}
	case strings.HasSuffix(bare, "."):
		// dnsname.Valid allows the one trailing dot it was left.
		return "", &AddressError{Host: host, Port: port, Reason: "the host ends with an empty label (two dots)"}
	case !dnsname.Valid(bare):
		return "", &AddressError{Host: host, Port: port, Reason: "the host is not a DNS name (labels of letters, digits, '-' and '_' joined by '.')"}
	case err != nil || n == 0:
		return "", &AddressError{Host: host, Port: port, Reason: "the port is not a number from 1 to 65535"}
	}
	return fmt.Sprintf("_%d._tcp.%s.", n, bare), nil
}

// AddressError means there is no TLSA name for a host and port.
type AddressError struct{ Host, Port, Reason string }

func (e *AddressError) Error() string {
	return fmt.Sprintf("dane: no TLSA name for %s: %s", net.JoinHostPort(e.Host, e.Port), e.Reason)
}
