// Package jwk reads, writes and names the keys keytool trusts: ECDSA
// (P-256, P-384, P-521), RSA (2048 to 16384 bits) and Ed25519, public or
// private.
//
// # Reading
//
// Parse and ReadFile take any of these, told apart by their content and
// never by a file name:
//
//   - a JWK, or a JWK Set ({"keys":[…]}), as Docker's key.json and
//     libtrust's key sets are;
//   - PEM blocks: PUBLIC KEY, PRIVATE KEY, EC PRIVATE KEY, RSA PRIVATE KEY,
//     RSA PUBLIC KEY, OPENSSH PRIVATE KEY and CERTIFICATE (its public key),
//     one or many in a file;
//   - OpenSSH public keys in authorized_keys form, one per line.
//
// go-jose reads a JWK's key material (docs/design.md, "One decoder
// rule"), with two exceptions. A public EC (P-256, P-384, P-521) or
// Ed25519 key whose object holds nothing beside kty, crv, x (and y) but
// attributes — the keys trust stores are made of — is decoded on a fast
// path with go-jose's checks, which only ever accepts: anything else it
// meets (use, alg, x5c, a private member, an unusual encoding, a point it
// would refuse) is left to go-jose, so every refusal is go-jose's, and the
// differential fuzz target FuzzFastKey proves that both read every object
// alike. An RSA key larger than go-jose's limit (jose.MaxRSAModulusBits,
// 4096 bits by default) keytool decodes itself, up to MaxRSABits; it may
// then not carry the certificate members (x5c, x5u, x5t) that go-jose
// would check. jwk never changes go-jose's settings.
//
// Every failure is a *ParseError naming the file, the line or JSON member,
// and the reason. A file with one bad key is refused whole by Parse and
// ReadFile. ParseSet reads the same formats entry by entry (a member of a
// JWK Set's "keys", a PEM block, an OpenSSH line), returning each entry's
// key or error: it is for the trust stores' files that grant trust, whose
// good entries may load while a bad one is reported.
//
// What readers could resolve differently is refused, never resolved: two
// JSON members whose names are equal, or equal but for case (Go's
// encoding/json, and so go-jose, takes "x" and "X" for one name), a member
// that is only a case variant of a name keytool or JOSE gives a meaning
// ("From", "D"), two PEM headers of one name in any case, and two from=
// options on an authorized_keys line.
//
// # Attributes
//
// Members beyond the key material — kid, address (or libtrust's hosts),
// comment, expires, from, and any other — are kept in Key.Attrs and written
// back unchanged, as JWK members or PEM headers. A kid in libtrust form must
// be the key's own key ID (KeyIDMismatchError); any other kid is a label.
//
// "use" and "key_ops" say what a key is for (RFC 7517). keytool signs TLS
// handshakes with private keys and verifies them with public ones, and
// refuses, wherever it reads keys, one marked otherwise (UseError): "use"
// must be "sig", and "key_ops" list only "sign" and "verify", with "sign"
// on a private key and "verify" on a public one; "alg" must name neither
// an encryption algorithm nor a signature algorithm for another kind of
// key (ES256 on an Ed25519 key, ES384 on a P-256 one, RS256 on an EC one),
// while a name keytool does not know is left alone. The public half of a
// private key marked ["sign"] is marked ["verify"] (PublicKey, and every
// writer of public halves). An RSA private key's dp, dq and qi must be all
// present or all absent, and the values d, p and q give (CRTError).
//
// # Names of a key
//
// A key's identity is the SHA-256 of its DER SubjectPublicKeyInfo (SPKI).
// From it come the fingerprint "SHA256:<base64>" that keytool shows first,
// and Docker's key ID "ABCD:EFGH:…". The RFC 7638 thumbprint is a third,
// independent name, and ssh-keygen's fingerprint (Key.SSHFingerprint), the
// SHA-256 of the key's SSH encoding in the same "SHA256:<base64>" form, a
// fourth. ParseFingerprint accepts all of them, plus curl's "sha256//…"
// and hex, and Fingerprint.Match compares a key against one; a SHA256:…
// input matches a key by either hash.
//
// # Writing
//
// MarshalPublic never writes a private member, whatever the key holds.
// WritePrivateKeyFile and WritePublicKeyFile write atomically with modes
// 0600 and 0644, creating the file or, as their WriteMode says, replacing
// it; ReadFile refuses a private key that group or others can read.
package jwk
