// Package tlsbridge gives Go servers and clients keytool's pinned mutual
// TLS: each side presents its own key, and the other side trusts the key,
// not a certificate authority.
//
// # Server
//
// A Server presents an Identity and requires a client certificate. In
// VerifyConnection — which runs on every handshake, resumed ones included —
// it takes the SHA-256 of the client's SubjectPublicKeyInfo and asks the
// authorized keys (an *authkeys.Store): revoked? authorized? expired? from
// an allowed network? In PKI mode, a client whose key is not pinned may
// still be admitted by a CA certificate and CRL. Handlers learn who called
// from Server.PeerOf or, behind Server.Middleware, PeerFromContext.
//
//	id, _ := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{})
//	keys := authkeys.Open(ctx, authkeys.HomeOptions(home))
//	srv, _ := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: keys})
//	httpSrv := &http.Server{Handler: srv.RequireAuthenticated(mux), TLSConfig: srv.TLSConfig(),
//		ConnContext: tlsbridge.ConnContext}
//	ln, _ := net.Listen("tcp", ":8443")
//	httpSrv.ServeTLS(tlsbridge.BudgetListener(ln), "", "")
//
// ConnContext gives each request the address of its connection, against
// which PeerOf checks an entry's "from" networks: r.RemoteAddr is the
// client's to write behind middleware that sets it from X-Real-IP or
// X-Forwarded-For. Without it, keys with "from" networks are refused at
// each request (NoConnContextError); HookConnContext installs it on a
// server that has a ConnContext of its own.
//
// Server.Configure adds the same to an existing *tls.Config, and refuses
// settings that conflict rather than overwriting them.
//
// # Handshake budget
//
// crypto/tls reads a client's Certificate message whole, up to 256 KiB,
// before anyone decides on the client, into a buffer it grows by
// doubling: a quarter to half a megabyte held by each connection in its
// handshake, from peers not yet authenticated. BudgetListener (under
// tls.NewListener, http.Server.ServeTLS or grpc.Server.Serve; NewBudgetConn
// for one connection) holds a client to MaxHandshakeBytes, 64 KiB, until
// the Server's VerifyConnection admits it: the read past the budget fails
// the handshake with a *HandshakeTooLargeError. A real client sends far
// less (a keytool client's whole handshake is 2.2 KiB, a CA chain 10 to
// 20 KiB). Once admitted — whoever drives the handshake, net/http or the
// caller, in TLS 1.2 and 1.3, resumed or not — the client sends what it
// likes. A listener of the caller's above BudgetListener must hand on
// connections with a NetConn method, through which the Server finds the
// budget to lift. Without the wrapper nothing bounds it but crypto/tls.
//
// # Client
//
// A Client presents its Identity and checks the server's key against the
// keys pinned for the address it dialled (a *knownhosts.Store): a match
// connects; another pinned key is a *knownhosts.KeyChangedError, never a
// prompt; no pin is decided by the PKI if configured, else by the Policy —
// Strict refuses, Ask puts the question to a Prompt (yes pins, once
// connects without pinning, no refuses), AcceptNew pins, Insecure accepts
// with a warning. Client.Transport gives an http.Transport doing all this.
// With ConfirmCA, the Prompt is also asked about a server a CA verified
// (libvirt's validator); the UnknownHost it gets is the whole peer.
//
// # Purposes
//
// A client or server may have a Purpose: in PKI mode its unpinned peers
// are verified by the CAs installed for that purpose (HOME/ca.d/PURPOSE,
// InstallCA) if there are any, else by the general CAs — never by another
// purpose's (docs/design.md, "Purposes").
//
// # Live revocation
//
// A handshake's decision is taken again while the connection is open:
// Server.Live and Client.Live return a LiveConns that closes the
// connections whose peer key stops being admitted — on each change of the
// store, at an entry's expiry, and every second in PKI mode (the CRL) —
// logging the key and why. Servers hook it into http.Server.ConnState or
// call Track; clients dial through LiveConns.DialContext or Transport.
//
// # Certificates
//
// SelfSigned makes the certificate that presents a key: it never expires
// and carries the key's ID, so that it can be re-made at every start.
// CAPool and CABundle turn trusted keys into per-key CA certificates for
// software that only does chain verification (OpenSSL, curl, nginx); unlike
// keytool's own verification, those let a trusted key vouch for others.
// A CABundleWriter writes such a bundle as it is made, for any number of
// keys.
//
// # Policy
//
// TLS 1.2 or 1.3 only; in TLS 1.2 only ECDHE with AEAD suites; no SHA-1
// signatures; no renegotiation. There is no switch to weaken it.
package tlsbridge
