// Package knownhosts decides whether the key a server presents is the one
// pinned for its address: keytool's known_hosts, for TLS.
//
// Host keys live in trusted_hosts.json (or .jwk, .pem) and one file per
// host in trusted_hosts.d/, each key carrying the addresses where it may be
// seen in its "address" member (libtrust's "hosts" is read too):
//
//	{"kty":"EC","crv":"P-256","x":"…","y":"…",
//	 "address":["db1.example.com:5432","10.0.0.7:5432"]}
//
// # Address patterns
//
//	host.example.com          any port          10.0.0.7:443        IPv4 and port
//	host.example.com:443      that port only    [2001:db8::1]:443   IPv6 and port
//	*.lab.example.com         wildcards * and ? in the host
//	!secret.lab.example.com   negation: an entry whose negated pattern matches does not apply
//
// Host names compare without case for ASCII letters; a name written with
// its final dot (rooted: api.dev.) is not the name without it (relative:
// api.dev), which the system may resolve through its search list, as
// OpenSSH's known_hosts tells them apart; a negation excludes the name
// either way (docs/design.md, "Rooted and relative names"). IP literals
// compare as addresses (2001:DB8:0::1 is 2001:db8::1, an IPv4-mapped
// address is its IPv4 address). A host may have several keys and a key
// several hosts.
//
// # Data flow and decisions
//
// Open (watching) or Load (once) reads the files through the shared loader
// (internal/keydir). Exact addresses are indexed in a map, and by key the
// entries with wildcard patterns and those without an address; a reload
// edits a copy of that index with the files that changed rather than
// building it again, so that a change costs what changed even for a
// client pinning a fleet (docs/design.md, "From a file change to a
// handshake decision"). Check(addr, key) then answers:
//
//   - nil: a pin that applies to addr holds the key;
//   - *RevokedError: the key is revoked, or a revocation list is unreadable;
//   - *KeyChangedError: an exact (non-wildcard) pin for addr holds other
//     keys — a reinstall, or a man-in-the-middle; the message shows both
//     fingerprints and the file pinning the old key (keytool's command
//     line adds the warning and the commands to re-pin);
//   - *UnknownHostError: no pin applies. A host matched only by wildcard
//     pins of other keys is unknown, not changed: a wildcard cannot know
//     that this particular host used to have another key.
//
// A key without an address, alone in a file of a trusted-hosts directory
// (Docker's proposal: the server's pub_key.json copied as it is), is
// pinned for any address its certificate names: Decide answers
// PinnedIfNamed, and WithCertificate admits it only if the server's
// certificate names the dialled host. The address's own pins decide first,
// and while a file of pins is skipped it is refused (*SkippedFilesError):
// the skipped file may pin another key for the address.
//
// Add pins a key for an address in trusted_hosts.d/<host>_<port>.json
// (see FileName), refusing with *KeyChangedError and writing nothing if the
// address is already pinned to another key. AddKey with AddAnother pins
// one more key beside the address's pins, in a file of its own (see
// AnotherFileName): a key rollover, where both keys are admitted for a
// while. Remove unpins an address (every key of it; a key pinned for
// several addresses keeps the others) or a fingerprint (the key
// everywhere); RemoveKey unpins one key of an address; RemoveAll is
// Remove of several queries in turn, on one proof of the admin index.
package knownhosts
