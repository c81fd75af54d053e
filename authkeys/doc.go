// Package authkeys decides which client keys may connect in: keytool's
// authorized_keys, for TLS.
//
// The trust is a set of public keys in plain files — authorized_keys.json
// (or .jwk, .pem) and one file per client in authorized_keys.d/ — that an
// admin, config management or a Kubernetes ConfigMap can write. Each key
// is identified by the SHA-256 of its SubjectPublicKeyInfo (its SPKI hash),
// never by a certificate, and may carry attributes:
//
//	{"kty":"OKP","crv":"Ed25519","x":"…",
//	 "name":"alice", "comment":"alice@laptop",
//	 "expires":"2030-01-31T00:00:00Z", "from":["10.0.0.0/8"]}
//
// Keys listed in revoked_keys.{json,pem} or revoked_keys.d/ are refused
// whatever else says, and if a revocation list cannot be read every key is
// refused until it is fixed.
//
// # Data flow
//
// Open (watching) or Load (once) reads the files through the shared
// loader (internal/keydir), which reports bad files as Problems and keeps
// going. Each key becomes a small item, computed once at load: its SPKI
// hash, its file, and its name, comment, expiry and networks when it has
// any of its own; the Entry callers see is made from it the first time
// one is asked for, and kept (docs/design.md, "Memory of a loaded store").
// The items are indexed by SPKI hash in an immutable snapshot behind an
// atomic.Pointer, so a handshake's Lookup takes no lock, allocates nothing
// when it accepts a client seen before, and costs the same at one key or
// a million:
//
//	e, err := store.Lookup(sha256.Sum256(cert.RawSubjectPublicKeyInfo), remoteAddr)
//
// Lookup checks, in order: revoked (*RevokedError), authorized
// (*NotAuthorizedError), expired (*ExpiredError), source network
// (*SourceNotAllowedError). Each error is one line naming the key's
// fingerprint and why; keytool's command line turns it into advice with
// the command that changes the decision.
//
// A server that must answer before it has read 100,000 files opens with
// OpenEarly: until its full load is published it decides from the files
// the admin index names for the client's key, once that index is proved
// complete by every file's stamp, and waits for the full load wherever
// it cannot be sure (docs/design.md, "Early decisions").
//
// A reload edits a copy of the previous index rather than building a new
// one: the loader keeps the *File of every unchanged file, so the files
// that changed are found in one pass, and only their entries are removed
// and inserted. At 100,000 keys a reload after one file changed costs a
// few milliseconds instead of re-inserting every key.
//
// An entry's name is its "name" attribute, else (in a .d directory) its
// file name without extension — authorized_keys.d/alice.json is "alice" —
// else its comment. If the same key appears twice, the first file wins:
// single files before directories, then by file name.
//
// # Writing
//
// Add writes authorized_keys.d/NAME.json atomically and exclusively (two
// processes adding at once lose nothing; the same name can be taken only
// once), never replaces a different key unless asked to, and refuses names
// that could leave the directory. Its checks and its write are one step
// against every other Add, in the process and across processes (the
// directory's lock): one key added under two names at once is written
// once (docs/design.md, "Concurrent writers"). Remove deletes by name or fingerprint and
// rewrites a file that holds other keys too. See docs/trust-stores.md.
package authkeys
