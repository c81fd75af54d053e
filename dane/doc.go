// Package dane looks up a host's key in DNS, as TLSA records (RFC 6698,
// RFC 7671) validated by DNSSEC: the TLS counterpart of OpenSSH's SSHFP
// records and VerifyHostKeyDNS.
//
// The record for a key is usage 3 (DANE-EE: the end entity's own key),
// selector 1 (its SubjectPublicKeyInfo) and matching type 1 (SHA-256) —
// the very SPKI hash keytool pins and prints as the SHA256: fingerprint —
// or matching type 2 (SHA-512) or 0 (the whole SPKI). For
// host.example:8443 it is published at _8443._tcp.host.example:
//
//	_8443._tcp.host.example. IN TLSA 3 1 1 <hex SHA-256 of the SPKI>
//
// Data flow: Resolver.Lookup sends one TLSA query asking for the AD bit
// to the resolver, over UDP (TCP when truncated), within a short timeout
// — not with DNSSEC OK, which makes a local stub resolver such as
// systemd-resolved pass the query, and its upstream's AD bit, through —
// and returns a Result: whether a usable record matches the key
// presented, and whether the answer was validated. Validation is the
// resolver's: this package checks no signature itself, and believes the
// resolver's AD (authenticated data) bit only when the resolver is
// declared trustworthy — named explicitly, or, for the system resolver of
// resolv.conf, when resolv.conf has "options trust-ad", as glibc does. An
// AD bit from anywhere else could have been set by anyone on the path,
// and one from a forwarder on the loopback interface by anyone on its way
// from the forwarder's upstream.
//
// Records of usages 0, 1 and 2 (a CA's certificate or key, PKIX checked
// or not) name a CA, not the host's key: they are ignored and counted,
// never read as a key. Any failure — a timeout, SERVFAIL (which is how a
// validating resolver reports a bogus zone), a refused query — is a Result
// with Status Failed and the reason; callers fall back to their usual
// checks. How tlsbridge uses a Result is in docs/design.md ("Decisions")
// and docs/dns.md.
package dane
