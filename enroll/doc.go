// Package enroll lets a new client join a keytool server with a one-time
// token, instead of copying public keys by hand: one string, pasted once,
// makes the server authorize the client's key and the client pin the
// server's key.
//
// It replaces LXD's trust password (seed 000), which leaked and never
// expired, with what LXD moved to: tokens that name the server's key,
// carry a random secret, expire, and work once.
//
// # The flow
//
//	server (keytool invite)                      client (keytool join TOKEN)
//	NewInvite ── writes invites.d/NAME.json:
//	             name, SHA-256(secret), expiry,
//	             addresses (never the secret)
//	          ── returns the Token ───── out of band (chat, ticket) ─────▶ DecodeToken
//	                                                                       Join:
//	                         ◀──── TLS: the client presents its own key ── dial the token's address;
//	tlsbridge.Server, AllowUnknown:              accept ONLY the token's server key
//	the handshake completes for unknown keys     (else *InterceptionError, secret not sent)
//	Handler (POST /.well-known/keytool/join) ◀── {"name": NAME, "secret": …}
//	  rate limit → secret (constant time) → expiry
//	  → claim (hard link: exactly one winner)
//	  → authkeys.Store.Add(handshake key, NAME)
//	  ──── {"name", "client_fingerprint", "server_fingerprint"} ─────────▶ hosts.Add(addr, server key)
//	                                                                       for each address where a
//	                                                                       handshake showed that key
//
// The client's key is the key of the TLS handshake, which proved the client
// holds it; the request never names a key. The server's key is checked
// against the fingerprint in the token, which came through another
// channel, so there is no trust on first use and no prompt: if another key
// answers, someone is in the middle, and the secret is never sent.
//
// # Tokens
//
// A Token is encoded (Token.Encode) as one string, safe to paste in a
// terminal, a chat or a mail:
//
//	keytool-join-1:<base64url(payload ‖ first 4 bytes of SHA-256(payload))>
//
// The payload holds the server's SPKI hash, a 256-bit secret, the expiry,
// the invitation name and the addresses to dial (see Token.Encode for the
// bytes). DecodeToken ignores white space (a token wrapped over lines) and
// reports a token cut short or changed in copying as ErrTokenMangled, by
// strict base64 and the checksum — not as a wrong secret at the server.
// Token.String and Token.LogValue hide the secret.
//
// # Invitations on the server
//
// NewInvite, ListInvites and RevokeInvite manage HOME/invites.d (mode
// 0700): a pending invitation is NAME.json (mode 0600), holding the name,
// the SHA-256 of the secret, the server's fingerprint, the addresses and
// the creation and expiry times. Using it moves it to used/NAME.json with
// the time and the client's fingerprint; revoking it deletes it. Names
// follow the rules of authorized-key entry names, since the name becomes
// the client's entry in authorized_keys.d.
//
// Whoever can write an invitation can let any key in, so the invitations
// are trust files under the rule of package trustfile (OpenSSH's
// StrictModes): each file, invites.d, invites.d/used and every directory
// up to the keytool home — the parent of invites.d — must belong to root
// or the server's user and not be writable by group or others. An
// invitation that breaks the rule is not honoured, and listing reports it.
//
// # Serving enrollment
//
// Handler checks, in order: the rate limits (per remote address, IPv6 per
// /64, and global; failures only, charged when a failed attempt ends,
// while attempts in progress count as failures to come, so that attempts
// made at once cannot pass them together), the request, the secret (SHA-256,
// compared in constant time), the expiry, then claims the invitation by
// linking its file to a claim named by the secret — of clients racing
// with one token, in one process or several, exactly one link succeeds;
// the invitation stays pending meanwhile —, checks the claimed file's
// secret and expiry again (an invitation made again under the same name
// in between stays pending for its own token), and adds the client's key with
// authkeys.Store.Add (which never replaces a key), one add at a time, so
// that a key presenting two tokens at once gets one name. Then the pending file
// goes (if it is the one claimed, under the invitations' lock), and the
// claim. If adding fails, the claim alone is removed: the invitation is
// pending again, unless RevokeInvite deleted it meanwhile. Nothing ever
// puts an invitation back, so that no revocation is undone, with or
// without flock(2). A server that stops in between leaves the claim,
// which blocks the invitation (Invitation.Claimed says since when) until
// RevokeInvite removes it, or PruneInvites once it has expired. Every refusal has its own Reason and HTTP status
// (but a wrong secret, answered as an unknown invitation: see below),
// is logged with the remote address, the client's fingerprint, the
// invitation name and the reason (never the secret), and writes nothing.
//
// Mount it with WithEnrollment on an HTTP server, or, in a server that is
// not an HTTP server (keytool proxy), hand each unauthenticated connection
// to ServeConn. Close it once the server has stopped: the refusals by the
// limits are logged folded, and Close logs the counts still pending.
//
// # Joining
//
// Join dials the token's addresses in order with a tlsbridge.Client whose
// host check accepts only the token's key, posts the secret — once a
// request that carries nothing has shown that its requests reach
// keytool's enrollment gate, not a service behind the server (keytool
// proxy passes an authorized key's connections to its target, which
// would get the secret) — and, once the server said yes, pins the server's key in the client's trusted hosts for
// the addresses where a completed handshake showed it: the one it enrolled
// through and any other it reaches then (Result.Unverified lists the rest,
// unpinned: a token's addresses are only what its maker wrote). It checks first that no existing pin contradicts
// the token, so that nothing is half done. Errors are typed, say what
// happened in one line and carry their data, never a command to run:
// *TokenExpiredError, *HostsDisagreeError, *InterceptionError,
// *UnreachableError (naming every address tried), *HandshakeRefusedError,
// *NotEnrollmentError, *RefusedError (errors.Is with ErrExpired,
// ErrAlreadyUsed, ErrUnknown, ErrWrongSecret, ErrRateLimited),
// *KeyMismatchError and *PinError.
//
// What the server answers a client it does not trust yet — a refusal's
// message, the 403 of other paths — names nothing of the server but what
// the client sent: no file, no other entry, no network, no command. Nor
// does it tell whether the server holds anything under a name the client
// sent, but to a token of that invitation's secret: a wrong secret is
// answered as a name never made (ReasonUnknown), and logged as what it is
// (ReasonWrongSecret).
package enroll
