// Package etcd keeps keytool's trust stores on etcd v3: one write of a
// key under a prefix, and every host watching that prefix enforces it
// within a second (docs/fleet.md).
//
// # Data model
//
// Under a prefix PREFIX, each entry is one key file:
//
//	PREFIX/authorized_keys/NAME   client keys a server lets in
//	PREFIX/revoked_keys/NAME      keys refused everywhere
//	PREFIX/trusted_hosts/NAME     host keys a client trusts
//
// A value holds exactly what the file of that name would hold in a
// keytool home (a JWK with its attributes, a JWK Set, a PEM bundle), and
// is read by the same parser, with the same per-entry problems and the
// same fail-closed rule for revocations: the stores read a Source through
// keydir's Feed interface (authkeys.Options.Feeds, RevokedFeeds), as they
// read a .d directory. A key under PREFIX outside this layout, a NAME that
// is not a valid file name, or a value larger than Options.MaxValue is
// reported by its key (Problems, and the stores' Problems) and never
// grants anything; under revoked_keys/ it refuses every key. A list that
// answers a key outside PREFIX (which etcd never does: a proxy or a member
// gone wrong) is refused whole (OutsideKeyError), never read as PREFIX's;
// a watch's event for such a key is ignored, and logged the same way. An
// answer without etcd's response header is refused too (NoHeaderError):
// a list whole, a read that would confirm the view confirms nothing.
//
// # Data flow
//
//	etcd ──Get(prefix), Watch(from rev+1)──▶ Source (one map, a revision,
//	  ▲        progress notifications          the time it was last known current)
//	  │                                          │ Feed views per kind
//	  └─ read, RequestProgress (Options.Progress) ├──▶ authkeys / knownhosts loader
//	                                             └──▶ local cache (atomic, 0600)
//
// A Source lists the prefix and watches it from the list's revision + 1.
// The etcd client resumes a broken watch from the last revision it
// delivered; a watch ended otherwise is opened again from the Source's
// own last revision; a watch cancelled because that revision was
// compacted makes the Source list again and swap the new state in whole.
// Every Options.Progress the Source confirms that it is current, even when
// nothing changes: by a linearizable read of the store's revision, or, when
// the store has moved on, by a progress notification (RequestProgress)
// at that read's revision or past it (one below is from a member behind
// the read's, and confirms nothing). A watch that sends nothing within 5 s
// of that request, or that its member does not say is made within 5 s
// while the client has a connection, is on a member that does not answer
// (frozen, or its packets dropped): it is left and made again, with a
// watcher of its own, on the connections that answer. Give
// Options.Client keepalive too (clientv3.Config.DialKeepAliveTime 10 s,
// DialKeepAliveTimeout 3 s, as keytool's own): without it gRPC's round
// robin goes on sending a frozen member a read in three, each failing
// after its time, for as long as the freeze lasts; with it, for 13 s at
// most (docs/fleet.md).
// A read whose revision is below the view's (etcd restored without
// --bump-revision), a response from another cluster than the list's, or
// the key of the view's last write read at that write's revision holding
// another (a restore to before it) makes the Source list again, as a
// compaction does.
//
// # Offline and stale
//
// Each consistent state is persisted to Options.Cache (atomically, mode
// 0600) and read back, through the same file-trust rule as every other
// trust file, when the Source starts: a host that restarts while etcd
// cannot be reached still enforces the last view, revocations included;
// a state that cannot be written removes the cache, which would hold an
// earlier one.
// A cache that cannot be read, is corrupt, belongs to another prefix or
// has unsafe modes is refused: the Source then has no view until etcd
// answers, and the stores refuse every key. Past Options.MaxStaleness
// without being known current, the Source's view is refused in the same
// way (every new connection refused, logged), and used again as soon as
// etcd answers: while the client cannot reach any member, the Source has
// its connection try etcd again about once a second
// (ResetConnectBackoff on Options.Client's connection), where gRPC's own
// waits grow to two minutes.
//
// # Logging in
//
// A client made by clientv3.New with a user and password (etcd's RBAC)
// logs in again — a bcrypt check on the member — for every watch the
// Source makes anew after one ended; KeepLogin, called on its
// clientv3.Config before clientv3.New, keeps the login for as long as
// etcd takes its token.
package etcd
