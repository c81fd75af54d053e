// Package proxy puts keytool's pinned mutual TLS in front of any TCP
// server, or behind any TCP client, without changing either: an HTTP
// server, Redis, a database, curl, psql.
//
// # Server mode
//
// A Server accepts mutual TLS, lets its *tlsbridge.Server decide on each
// client's key (authorized, revoked, PKI mode: docs/tlsbridge.md), and
// connects each admitted client to the target over plain TCP:
//
//	client ──mutual TLS──▶ Server ──TCP──▶ target (127.0.0.1:8080)
//	          │
//	          └ handshake: the client's key must be authorized (authkeys)
//
// With ServerOptions.Enroll, a client whose key is not authorized may
// finish the handshake but only to enroll (package enroll); its
// connection never reaches the target.
//
// # Client mode
//
// A Client accepts plain TCP — from a program that only speaks TCP — and
// connects each connection to the target over mutual TLS, presenting its
// identity and checking the target's key against the keys pinned for the
// target's address (knownhosts):
//
//	program ──TCP──▶ Client ──mutual TLS──▶ target (db.example:8443)
//
// CheckTarget connects once before serving, so that an unknown or changed
// key, or a target that refuses this client, stops the program at start;
// one that cannot be reached, or makes no handshake, is logged, each in
// its words.
//
// # Connections
//
// Each connection gets its own goroutine. Its handshake (and the dial to
// the target) must finish within HandshakeTimeout, and a client may send
// at most 64 KiB before its handshake completes (a
// *HandshakeTooLargeError past it: crypto/tls would otherwise read a
// certificate chain of up to 256 KiB from a peer not yet authenticated;
// docs/design.md, "Connections in their handshake"). Then bytes are copied
// both ways; when one side ends its stream, the other side's write half is
// closed (a TCP FIN, a TLS close_notify) and the copy the other way goes
// on, so that a client that sends a request and closes its side still gets
// the answer. An error either way closes both. From a half-close on, the
// other direction must move a byte at least every IdleTimeout (default
// five minutes), or both are closed ("idle after half-close: closing"):
// a target that reads the client's half-close and never closes its side
// would otherwise hold two descriptors forever. A connection where
// neither side has closed may stay quiet as long as it likes: long-lived
// idle connections are legitimate, and TCP keepalives find dead peers.
// With HTTP, a keep-alive connection between requests (HTTP/2: with no
// stream open) has nothing in flight, as one after a half-close, and is
// closed when no request has come for IdleTimeout; an HTTP/2 client may
// have 100 streams open at once on a connection (maxHTTP2Streams).
//
// Every connection is logged (log/slog) when it is admitted or refused,
// and as it ends: the remote address, the peer key's fingerprint, its
// authorized-keys entry name or why it was refused, the bytes copied each
// way, the duration. Each handshake is decided against the stores' current
// snapshot, so with watched stores (authkeys.Open, knownhosts.Open) a key
// authorized, removed or revoked applies from the next connection, without
// a restart; with the Store option, each reload is logged with what it
// changed ("trust reloaded").
//
// # Live revocation
//
// Open connections are decided again too, by tlsbridge.LiveConns (the
// one mechanism Go servers and clients use): on each reload of the Store,
// when the entry that admitted a key expires, and every second in PKI
// mode (a CA's CRL) or without a Store. A
// connection whose key is no longer admitted (removed, revoked, expired,
// outside "from", a revocation input failing closed, a CA's CRL; in client
// mode the target's key revoked, pinned to another key or unpinned) is
// closed both ways and logged ("closing: key no longer admitted", with the
// reason); connections of keys still admitted are never touched.
// KeepOpenOnRevoke turns this off.
//
// Failed handshakes are logged at once the first time for a source (IP
// address) and kind of failure, then counted: at most one line per source
// and kind every ten seconds says how many more there were
// (repeated=N in=10s), so that one noisy client cannot flood the log; at
// most 1024 sources are remembered. With ServerOptions.Enroll, so are the
// lines about clients whose key is unknown ("not authorized: serving
// enrollment only", "not authorized: no HTTP request, answered 403"),
// which any peer can cause with a key of its own making. A client that refuses the proxy's key
// (its alert about our certificate, before it showed its own) is logged
// as "client refused this server's key", with the alert.
//
// # Telling the target who connected
//
// With ServerOptions.ProxyProtocol, each target connection starts with a
// PROXY protocol v2 header: the client's address and port, the TLS
// version and cipher (PP2_TYPE_SSL), and the key's fingerprint, entry
// name and key ID in TLVs of the specification's custom range
// (PP2TypeFingerprint, PP2TypeName, PP2TypeKeyID). With
// ServerOptions.HTTP, the proxy speaks HTTP/1.1 and HTTP/2 to the client
// and forwards each request with httputil.ReverseProxy, after removing
// every identity header the client sent (keytool's, X-Forwarded-*, and
// other proxies' address, certificate and user headers: X-Real-IP,
// X-SSL-Client-*, Client-Cert…), deciding on its key again, and adding
// the key's
// (HeaderFingerprint, HeaderKeyID, HeaderName, HeaderClientCert) and
// X-Forwarded-For/Forwarded.
//
// # Metrics and readiness
//
// Metrics (NewMetrics) counts handshakes by result and reason, open
// connections and bytes, and reads the trust stores' state at each
// scrape (WatchStore); Health says whether the proxy is ready to admit
// clients; OpsHandler serves /healthz, /readyz and /metrics.
//
// # Lifecycle
//
// Serve logs "listening" with the goroutine count, and accepts until
// Shutdown, Close or the end of its context. Shutdown stops accepting,
// logs "stopped accepting; draining open connections" with the number
// still open and the goroutine count (with no connection open, the two
// counts are the same unless something leaked), and waits for the open
// connections until its context ends; then it cuts them. Close cuts them
// at once. A program drains on SIGTERM this way:
//
//	srv, err := proxy.NewServer(proxy.ServerOptions{TLS: tlsSrv, Target: "127.0.0.1:8080", Logger: log})
//	ln, err := net.Listen("tcp", ":8443")
//	go func() {
//		<-sigterm
//		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//		defer cancel()
//		srv.Shutdown(ctx, "signal", "terminated")
//	}()
//	err = srv.Serve(context.Background(), ln) // ErrServerClosed after Shutdown
//
// Serve returns as soon as accepting stops: a program waits for Shutdown
// to return before it exits.
//
// where tlsSrv is a *tlsbridge.Server made from an identity and an
// *authkeys.Store (see the example, and docs/proxy.md).
//
// # Errors
//
// The errors of this package are one line and start with "proxy:":
// *OptionError for options NewServer and NewClient cannot work with,
// *TargetError for a target that failed CheckTarget (the tlsbridge or
// knownhosts error inside says why), *TargetTimeoutError for a target
// that did not answer in time, *ResponseTimeoutError (HTTP mode) for a
// request it did not answer in time, *RequestBodyTimeoutError (HTTP
// mode) for a client that stalled in a request's body, ErrServerClosed
// and ErrServing. What to do about them is the program's to say.
package proxy
