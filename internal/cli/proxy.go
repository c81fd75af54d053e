package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/enroll"
	"github.com/keytool/keytool/internal/dnsname"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/proxy"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// proxyOptions are the flags of keytool proxy.
type proxyOptions struct {
	listen, target   string
	client           bool
	hosts            []string
	acceptHosts      []string // --accept-host (client mode)
	handshakeTimeout time.Duration
	idleTimeout      time.Duration
	drainTimeout     time.Duration
	responseTimeout  time.Duration // --response-header-timeout (HTTP mode)
	responseSet      bool          // given on the command line
	bodyTimeout      time.Duration // --request-body-timeout (HTTP mode)
	bodySet          bool          // given on the command line
	maxStartups      int           // per source (server mode)
	maxStartupsSet   bool          // given on the command line
	maxStartupsAll   string        // --max-startups, all sources (server mode)
	maxStartupsAllOn bool          // given on the command line
	enroll           bool
	keepOpen         bool
	gen              bool   // make the home's identity if it has none
	keyType          string // its type, with --gen
	metricsListen    string // serve /healthz, /readyz, /metrics there
	proxyProtocol    bool   // PROXY protocol v2 header to the target
	http             bool   // HTTP mode: identity in request headers
	logLevel         string // --log-level
	logFormat        string // --log-format
	indexDir         string // --index-dir: the server's own admin index
}

// proxyCommand makes the proxy command, with flag variables of its own.
func proxyCommand() *command {
	var o proxyOptions
	var flags *pflag.FlagSet
	return &command{
		name:    "proxy",
		uses:    globalHome | globalIdentity | globalHostKeys | globalPKI | globalStore,
		args:    "--listen ADDR --target ADDR [--client | --enroll] [--purpose P] [--gen [--type TYPE]]",
		summary: "put mutual TLS in front of any TCP server (or, with --client, before any TCP client)",
		help: `Server mode (the default): accepts mutual TLS on --listen, admits the clients
whose keys the home authorizes (authorized_keys.d, authorized_keys.json;
revoked_keys.d refuses; ca.pem adds PKI mode), and connects each admitted
client to --target over plain TCP. Wraps any TCP server: an HTTP server,
Redis, a database. The trust files are watched: a key authorized, removed
or revoked applies from the next connection, without a restart, and the
open connections of a key no longer admitted are closed (below).

--client: accepts plain TCP on --listen and connects each connection to
--target over mutual TLS, presenting the home's identity and checking the
target's key against trusted_hosts.d under --strict-host-keys. The target
is checked once at start, so that an unknown host's question is asked then
(on the terminal) and not in the middle of traffic; without a terminal an
unknown host is refused with the 'keytool trust-host' command to run.
Whoever reaches --listen acts with the home's key, and every web page the
user's browser opens can reach a loopback port: each request of a connection
that begins in HTTP/1.x is read, and one that names a host other than
localhost (*.localhost) or a loopback address (127.x.y.z, ::1: DNS
rebinding, or an address browsers mark nothing cross-site for), that
comes from a page of another site (Origin), or that the browser marks
Sec-Fetch-Site: cross-site (but a link followed) is answered 403 and
logged ("refused a browser's cross-site request"), nothing of it sent.
--accept-host NAMES allows names or addresses of yours for this machine
(as in /etc/hosts, or the address of a --listen on the network).
Requests for a forward proxy (CONNECT, http://host/ in the request line)
and streams that are not HTTP/1.x pass as they are.

Logs go to standard error, as log/slog text (--log-format json: one JSON
object a line), at --log-level info and above by default. Refused
connections are logged with the remote address, the peer key's
fingerprint and why; with --log-level debug, every admitted connection
too, when it opens and when it closes: its entry name, the bytes copied
each way and the duration (a busy proxy would write two lines a
connection otherwise). Problems in
the trust files are logged with the file's name, and each reload of them
with what changed ("trust reloaded" authorized=+added/-removed
revoked=+N/-N skipped=N keys=N). Failed handshakes are logged at once the
first time for a source address and kind, then as one count per 10
seconds (repeated=N); with --enroll, so are the lines about clients whose
key is not authorized. A client that does not trust the proxy's key is
logged as "client refused this server's key", with its alert. Once it
accepts, the proxy logs "listening" with the actual address (so --listen
127.0.0.1:0 works); the "identity" line, with the number of keys, comes
once every file is read, before or after it (after, in a large home).

--idle-timeout: once one side has closed its writing half, the other
direction must move a byte at least this often, or both are closed (a
target that never closes after the client's half-close would hold the
connection forever). A connection where neither side has closed is never
timed out. With --http, a connection with no request in flight (a
keep-alive connection between requests) is closed when no request has
come for this long; a request in flight is never timed out by it.

--max-startups-per-source N (server mode; default 64, as OpenSSH's
PerSourceMaxStartups but on by default): a source (an IPv4 address, an
IPv6 /64) may have N connections in their handshake at once — with
--enroll, a client not authorized counts until its connection ends — and
the next one is closed as it is accepted, logged as "refused" once, then
counted (a line per 10 seconds). Connections past their handshake never count.
Behind a TCP load balancer every client comes from its address: raise N.

--max-startups N or START:RATE:FULL (server mode; default 256:30:1024, as
OpenSSH's MaxStartups): the connections in their handshake of all sources
together. Past START, a new one is refused with a chance of RATE percent,
rising to every one at FULL ("N" refuses every one past N); refused
connections are closed as they are accepted, logged as "refused" once,
then counted for all sources in one line (remote=all). A source's own bound
does not stop a peer with many addresses (a /48 holds 65,536 /64s); the
default lets a fleet of agents reconnecting at once after a restart in,
and bounds what a flood holds to 1024 handshakes.

Live revocation: every open connection's key is decided again when the
trust files change, when its entry's "expires" passes, and every second in
PKI mode (the CRL).
A connection whose key is no longer admitted (removed, revoked, expired,
outside "from", a revocation file that cannot be read; with --client, the
target's key revoked, pinned to another key or unpinned) is closed within
a second, and logged ("closing: key no longer admitted" with the
fingerprint, name and reason). Connections of keys still admitted are not
touched. --keep-open-on-revoke: leave open connections be; a change
applies from the next connection only (with --http, from the next
request: each request is decided again, and a key no longer admitted
gets 403).

--enroll (server mode): clients whose key is not authorized may finish the
handshake, but only to enroll with a token from 'keytool invite' ('keytool
join'); anything else they do on that connection gets an HTTP 403
instead of a TLS alert: any other request, bytes that are not HTTP, and
silence (3 seconds with no byte, for a protocol where the server speaks
first). Revoked keys are refused in the handshake all the same. Off by
default.

--gen: when the home has no identity, make one first (--type, default
ec256; the types of 'keytool gen'), writing key.json (0600) and
pub_key.json (0644), and log "generated a new identity" with its file and
fingerprint — a daemon's keys made on its first run. An existing identity
is used as it is, never replaced. Several proxies started at once on one
empty home end with one key: one of them writes it, the others use it.
Without --gen, a home without an identity is an error.

--index-dir DIR (server mode): in a home of 1,000 authorized keys or
more, the proxy listens before it has read them all, and decides its first
clients from the admin index that 'keytool authorize' and the other admin
commands keep in HOME/.index, proved complete from every file's stamp; a
proxy whose user may not write the home (a service user, a read-only
home) cannot use that index, and reads every key before deciding anyone,
at each start. With DIR, it keeps an index of its own there instead
(made if missing, mode 0700; used only if it is this user's or root's,
and not writable by group or others, as the home): written after its
first full load, brought up to date from the files' stamps at each
start after. DIR must be outside the home.

The identity is watched too: a new key file, cert.pem (a CA-issued
certificate renewed on disk) or next key ('keytool gen --next', 'keytool
rotate') is presented from the next handshake, and open connections keep
the one they started with. A change that does not load (a key that does
not parse or that others may read, a certificate for another key) is
logged ("identity not reloaded") and the identity in use stays. SIGHUP
loads the identity again at once.

SIGTERM or SIGINT: stop accepting, let open connections finish (at most
--drain-timeout, then they are cut), exit 0. A second signal cuts them at
once. A proxy stopped while it writes the admin index its full load leaves
for the next start finishes that first, within the same --drain-timeout (a
second signal ends the wait).

--proxy-protocol (server mode): each connection to --target starts with a
PROXY protocol v2 header (HAProxy's; nginx, HAProxy, Envoy and many
servers read it): the client's address and port, and TLVs with the TLS
version and cipher (PP2_TYPE_SSL) and the client key's fingerprint (type
0xE0), authorized-keys entry name (0xE1) and key ID (0xE2). The target
must be configured to expect it.

--purpose P: in PKI mode, a peer whose key is not authorized (server mode)
or pinned (--client) is verified by the CAs installed for P (keytool ca add
--purpose P) if there are any, else by the general CAs (ca.pem, ca.d/*.pem);
never by another purpose's. With --client, pins for other purposes
(keytool trust-host --purpose) are not there for it.

--http (server mode): speak HTTP/1.1 and HTTP/2 to the clients and forward
each request to --target, an HTTP server, adding who the client is:
X-Keytool-Fingerprint, X-Keytool-Key-Id, X-Keytool-Name (the entry's name)
and X-Forwarded-Client-Cert (Envoy's Hash and Subject). Any header of
these names the client sent, in any case or with '_' for '-', and every
X-Keytool-* header, and the address, certificate and user headers other
proxies set (X-Real-IP, X-SSL-Client-*, X-Client-Cert*, Client-Cert,
X-Remote-User...), are removed first; X-Forwarded-For, X-Forwarded-Host,
X-Forwarded-Proto and Forwarded are the proxy's, not the client's. Each
request is decided again: a key revoked or removed since the handshake
gets 403 (with --keep-open-on-revoke too). A request whose response
headers the target has not sent within --response-header-timeout
(default 1m, nginx's proxy_read_timeout; raise it for a long poll) gets
504, and the proxy logs "target sent no response". A client that sends
nothing of a request's body for --request-body-timeout (default 1m,
nginx's client_body_timeout) has its connection closed with no answer
(HTTP/2: the stream reset), as nginx does, and the proxy logs "request
body stalled: closing". A keep-alive connection with no request in flight
is closed after --idle-timeout (HTTP/2: with a GOAWAY), and an HTTP/2
client may have at most 100 requests in flight on one connection.

--metrics-listen ADDR: serve /healthz (alive), /readyz (200 once the trust
files are loaded, the identity is valid and the proxy listens; 503 with
the reasons while a revocation file cannot be read or while draining) and
Prometheus /metrics over plain HTTP. Under systemd (Type=notify,
NOTIFY_SOCKET), READY=1 is sent once the trust files are loaded and the
proxy listens, STOPPING=1 when it drains, and with WatchdogSec=,
WATCHDOG=1 while /readyz would say ready (a proxy refusing everyone is
left to systemd's watchdog action and Restart=).

--store URL (etcd://HOST:PORT/PREFIX, in the etcd build of keytool): the
client keys (with --client, the pinned hosts) are the store's, watched; the
home's revoked keys still refuse. The last view is cached in the home; past
the maximum staleness every key is refused (docs/fleet.md); /metrics shows
the view's staleness (keytool_etcd_staleness_seconds).

` + hostDNSHelp("With --client, host keys in DNS", "") + `
Example:
  keytool -H /etc/keytool proxy --listen :8443 --target 127.0.0.1:8080
  keytool proxy --client --listen 127.0.0.1:8080 --target db.example:8443`,
		flags: func(set *pflag.FlagSet, c *cli) {
			flags = set
			c.hostDNS.register(set)
			c.registerUpdateHostKeys(set)
			set.StringVar(&c.purpose, "purpose", "", "in PKI mode, verify peers whose key is not authorized or pinned with the CAs of `PURPOSE` (keytool ca add --purpose); with --client, pins for other purposes do not count")
			set.StringVar(&o.listen, "listen", "", "accept connections on `ADDR` (host:port; port 0 picks one)")
			set.StringVar(&o.target, "target", "", "connect each connection to `ADDR` (host:port; in server mode also unix:/path/of.sock)")
			set.BoolVar(&o.client, "client", false, "client mode: plain TCP in, mutual TLS out to --target")
			set.StringSliceVar(&o.acceptHosts, "accept-host", nil, "with --client: let a web browser's requests name `NAMES` (comma-separated; names or addresses of yours for this machine, as in /etc/hosts) besides localhost and loopback addresses")
			set.StringSliceVar(&o.hosts, "host", nil, "server mode: put `NAMES` (DNS names, IPs; comma-separated) in the presented certificate")
			set.DurationVar(&o.handshakeTimeout, "handshake-timeout", 10*time.Second, "give up on a TLS handshake after `DURATION`")
			set.DurationVar(&o.idleTimeout, "idle-timeout", proxy.DefaultIdleTimeout, "after one side closes its writing half (with --http: between requests), close the connection when nothing moves for `DURATION`")
			set.IntVar(&o.maxStartups, "max-startups-per-source", proxy.DefaultMaxStartupsPerSource, "server mode: close at once a connection whose source (an IPv4 address, an IPv6 /64) has `N` in their handshake (or enrollment) already")
			set.StringVar(&o.maxStartupsAll, "max-startups", proxy.DefaultMaxStartups.String(), "server mode: with `START:RATE:FULL` connections of all sources in their handshake, refuse RATE% of new ones, rising to all at FULL (or N: all past N), as sshd's MaxStartups")
			set.DurationVar(&o.responseTimeout, "response-header-timeout", proxy.DefaultResponseHeaderTimeout, "with --http: answer 504 to a request the target sends no response headers to within `DURATION`")
			set.DurationVar(&o.bodyTimeout, "request-body-timeout", proxy.DefaultRequestBodyTimeout, "with --http: close the connection of a client that sends nothing of a request's body for `DURATION`")
			set.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, wait at most `DURATION` for open connections")
			set.BoolVar(&o.keepOpen, "keep-open-on-revoke", false, "do not close open connections whose key stops being admitted")
			set.BoolVar(&o.enroll, "enroll", false, "server mode: serve enrollment (keytool join) to clients whose key is not authorized")
			set.BoolVar(&o.gen, "gen", false, "make the home's identity first if it has none")
			set.StringVarP(&o.keyType, "type", "t", "", "with --gen: the new key's `TYPE` (default ec256)")
			set.BoolVar(&o.proxyProtocol, "proxy-protocol", false, "server mode: start each target connection with a PROXY protocol v2 header (client address, key fingerprint, entry name, TLS version)")
			set.BoolVar(&o.http, "http", false, "server mode: speak HTTP/1.1 and HTTP/2 to clients, forward requests to an HTTP --target with the client's identity in headers")
			set.StringVar(&o.logLevel, "log-level", "info", "log at `LEVEL` and above: debug (adds a line per connection), info, warn or error")
			set.StringVar(&o.logFormat, "log-format", "text", "log lines as `FORMAT`: text (log/slog key=value) or json (one object a line)")
			set.StringVar(&o.indexDir, "index-dir", "", "server mode: keep the admin index the first clients are decided from in `DIR`, a directory of this user's, not in HOME/.index (for a proxy that may not write the home)")
			set.StringVar(&o.metricsListen, "metrics-listen", "", "serve /healthz, /readyz and Prometheus /metrics over plain HTTP on `ADDR` (host:port)")
		},
		run: func(c *cli, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q (the addresses go in --listen ADDR and --target ADDR)", args[0])
			}
			// Name the flag missing, with what it is for.
			switch {
			case o.listen == "" && o.target == "":
				return usagef("--listen ADDR and --target ADDR are required: where to accept connections, and where to connect each one")
			case o.listen == "":
				return usagef("--listen ADDR is required: where to accept connections (host:port; port 0 picks one)")
			case o.target == "":
				return usagef("--target ADDR is required: where to connect each connection (host:port)")
			}
			o.maxStartupsSet = flags.Changed("max-startups-per-source")
			o.maxStartupsAllOn = flags.Changed("max-startups")
			o.responseSet = flags.Changed("response-header-timeout")
			o.bodySet = flags.Changed("request-body-timeout")
			if err := checkProxyFlags(c, o); err != nil {
				return err
			}
			if err := checkConnectionPurpose(c.purpose); err != nil {
				return err
			}
			return c.proxy(o)
		},
	}
}

// checkProxyAddrs refuses a --listen, --target or --metrics-listen that
// is not host:port, but for a Unix socket target in server mode
// (unix: and an absolute path).
func checkProxyAddrs(o proxyOptions) error {
	if path, ok := strings.CutPrefix(o.target, "unix:"); ok {
		switch {
		case o.client:
			return usagef("--client connects to a TLS server over TCP: --target must be host:port, not %q", o.target)
		case !filepath.IsAbs(path):
			return usagef("--target %q: a Unix socket's path must be absolute (unix:/run/app.sock)", o.target)
		}
	}
	for _, a := range []struct{ flag, addr string }{{"--listen", o.listen}, {"--target", o.target}, {"--metrics-listen", o.metricsListen}} {
		if a.addr == "" || (a.flag == "--target" && strings.HasPrefix(a.addr, "unix:")) {
			continue // --metrics-listen, optional; a Unix socket target (above)
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return usagef("%s %q is not host:port: %v", a.flag, a.addr, err)
		}
	}
	return nil
}

// checkAcceptHosts refuses an --accept-host that is neither a DNS name
// nor an IP address (an IPv6 one without its brackets).
func checkAcceptHosts(hosts []string) error {
	for _, h := range hosts {
		if h = strings.TrimSuffix(h, "."); !dnsname.Valid(h) && net.ParseIP(h) == nil {
			return usagef("--accept-host %q is neither a DNS name nor an IP address (an IPv6 address without brackets; localhost and loopback addresses are accepted without it)", h)
		}
	}
	return nil
}

// checkProxyFlags refuses flags that contradict each other or have no use
// in the mode asked for: a flag silently ignored is a mistake.
func checkProxyFlags(c *cli, o proxyOptions) error {
	if _, err := proxyLogger(c, o); err != nil {
		return err
	}
	if err := checkProxyAddrs(o); err != nil {
		return err
	}
	if o.enroll && c.store.url != "" {
		return usagef("--enroll writes the keys it enrolls to the home's authorized_keys.d; with --store the client keys are the store's: enroll on a home, or authorize with: %s", c.command("authorize", "--name", "NAME", "FILE"))
	}
	if o.client && o.enroll {
		return usagef("--enroll serves enrollment in server mode; it has no use with --client")
	}
	if o.client && o.proxyProtocol {
		return usagef("--proxy-protocol tells a plain TCP target who connected; it has no use with --client")
	}
	if !o.client && c.updateHostKeys != "yes" {
		return usagef("--update-host-keys is about the target's announced keys: it is for --client")
	}
	if !o.client && c.hostDNS.inUse() {
		return usagef("--verify-host-key-dns, --dns-resolver and --dns-timeout check the target's key: they are for --client")
	}
	if o.client && o.http {
		return usagef("--http serves HTTP in server mode; it has no use with --client")
	}
	if o.http && o.proxyProtocol {
		return usagef("--http tells the target who connected in headers; use it or --proxy-protocol, not both")
	}
	if !o.client && len(o.acceptHosts) > 0 {
		return usagef("--accept-host names the hosts a browser's requests to a client proxy may name; it is for --client")
	}
	if err := checkAcceptHosts(o.acceptHosts); err != nil {
		return err
	}
	if o.client && len(o.hosts) > 0 {
		return usagef("--host names the server's certificate; it has no use with --client")
	}
	if err := checkGenFlags(c, o); err != nil {
		return err
	}
	if err := checkProxyTimeouts(o); err != nil {
		return err
	}
	if err := checkIndexDir(c, o); err != nil {
		return err
	}
	return checkMaxStartups(o)
}

// checkProxyTimeouts refuses a timeout that is not positive, and
// --response-header-timeout or --request-body-timeout without --http,
// the one mode that waits for an answer from the target, or reads
// requests.
func checkProxyTimeouts(o proxyOptions) error {
	for _, d := range []struct {
		flag string
		d    time.Duration
	}{
		{"--handshake-timeout", o.handshakeTimeout}, {"--idle-timeout", o.idleTimeout},
		{"--response-header-timeout", o.responseTimeout}, {"--request-body-timeout", o.bodyTimeout},
	} {
		if d.d <= 0 {
			return usagef("%s must be positive, not %v", d.flag, d.d)
		}
	}
	switch {
	case o.responseSet && !o.http:
		return usagef("--response-header-timeout bounds the wait for an HTTP target's answer to a request; it has no use without --http")
	case o.bodySet && !o.http:
		return usagef("--request-body-timeout bounds the wait for an HTTP client's request body; it has no use without --http")
	}
	return nil
}

// checkMaxStartups checks --max-startups-per-source (positive) and
// --max-startups (sshd_config's forms); both are given in server mode
// only (the client proxy's connections come from local programs and make
// no handshake).
func checkMaxStartups(o proxyOptions) error {
	if o.maxStartups <= 0 {
		return usagef("--max-startups-per-source must be positive, not %d", o.maxStartups)
	}
	if o.client && o.maxStartupsSet {
		return usagef("--max-startups-per-source bounds the handshakes of the clients of a server proxy; it has no use with --client")
	}
	if o.client && o.maxStartupsAllOn {
		return usagef("--max-startups bounds the handshakes of the clients of a server proxy; it has no use with --client")
	}
	_, err := proxy.ParseMaxStartups(o.maxStartupsAll)
	if oe := (*proxy.OptionError)(nil); errors.As(err, &oe) {
		// "\"X\" is not N or …" (the form) rather than "\"X\": rate must…":
		// say what the form means.
		if !strings.Contains(oe.Reason, ": ") {
			d := proxy.DefaultMaxStartups
			return usagef("--max-startups %s (as sshd_config's MaxStartups: %v, the default, refuses %d%% of new connections once %d are in their handshake, rising to all at %d)",
				oe.Reason, d, d.Rate, d.Start, d.Full)
		}
		return usagef("--max-startups %s", oe.Reason)
	}
	return err
}

// proxy builds the proxy from the home and runs it until a signal, then
// drains.
func (c *cli) proxy(o proxyOptions) error {
	log, _ := proxyLogger(c, o) // checked with the other flags

	// The stores watch their files until the very end, draining included.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if o.gen {
		if err := c.proxyGen(o, log); err != nil {
			return err
		}
	}
	ops := newProxyOps(o.metricsListen, log)
	// The identity too is watched: a new key or cert.pem applies from the
	// next handshake (and at once on SIGHUP).
	id, err := c.watchIdentity(ctx, log, func(id *tlsbridge.Identity) { ops.identity(&id.Certificate) }, o.hosts...)
	if err != nil {
		return err
	}
	defer id.Close()
	var p runner
	if o.client {
		p, err = c.newProxyClient(ctx, o, id, ops, log)
	} else {
		p, err = c.newProxyServer(ctx, o, id, ops, log)
	}
	if err != nil {
		return err
	}
	if err := ops.listen(); err != nil {
		return err
	}
	defer ops.stop()
	// Signals are caught from before "listening" is logged: whoever reads
	// that line may signal at once.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnHangup(ctx, hup, id, log)
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	ops.start()
	return serveUntilSignal(ctx, opsRunner{p, ops}, ln, signals, o.drainTimeout, log)
}

// reloadOnHangup loads the identity again on each SIGHUP until ctx ends; a
// new identity that does not load is logged and the current one kept.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, id *tlsbridge.IdentityWatcher, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: reloading the identity")
			_ = id.Reload() // logged by the watcher
		}
	}
}

// proxyLogger is the proxy's logger, as --log-level and --log-format say.
func proxyLogger(c *cli, o proxyOptions) (*slog.Logger, error) {
	var level slog.Level
	switch strings.ToLower(o.logLevel) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, usagef("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(c.stderr, opts)), nil
	case "json":
		// JSON escapes only what it must: an entry's name that is not
		// shown as it is (a file of an earlier version holding U+200B
		// or a bidi control) is written quoted, its characters escaped,
		// as the text format and keytool list write it (docs/design.md,
		// "Names").
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "name" && a.Value.Kind() == slog.KindString && !keydir.PrintableName(a.Value.String()) {
				a.Value = slog.StringValue(termtext.Safe(a.Value.String()))
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(c.stderr, opts)), nil
	}
	return nil, usagef("--log-format %q: use text or json", o.logFormat)
}

// checkGenFlags refuses --type without --gen, a type keytool does not
// make, and --gen with -i: --gen makes the home's identity.
func checkGenFlags(c *cli, o proxyOptions) error {
	if o.keyType != "" && !o.gen {
		return usagef("--type is the type of the key --gen makes; it has no use without --gen")
	}
	if o.gen && c.identity != "" {
		return usagef("--gen makes the home's identity; it has no use with -i")
	}
	if o.keyType != "" {
		if _, err := jwk.ParseType(o.keyType); err != nil {
			return &usageError{err.Error()}
		}
	}
	return nil
}

// proxyGen makes the home's identity if it has none (--gen), and logs it.
func (c *cli) proxyGen(o proxyOptions, log *slog.Logger) error {
	var typ jwk.Type
	if o.keyType != "" {
		typ, _ = jwk.ParseType(o.keyType) // checked by checkGenFlags
	}
	opts, err := certOptions(o.hosts)
	if err != nil {
		return err
	}
	id, generated, err := tlsbridge.LoadOrGenerateHomeIdentity(c.home, typ, opts)
	if err != nil {
		return err
	}
	if generated {
		log.Info("generated a new identity", "file", c.layout().Identity()[0], "type", string(id.Key.Type()), "fingerprint", id.Key.Fingerprint())
	}
	return nil
}

// runner is *proxy.Server or *proxy.Client.
type runner interface {
	Serve(ctx context.Context, ln net.Listener) error
	Shutdown(ctx context.Context, attrs ...any) error
}

// serveUntilSignal serves on ln until the first signal, then drains for at
// most drain; the drain's end, or a second signal, cuts the connections
// still open.
func serveUntilSignal(ctx context.Context, p runner, ln net.Listener, signals <-chan os.Signal, drain time.Duration, log *slog.Logger) error {
	drainCtx, cutNow := context.WithCancel(context.Background())
	defer cutNow()
	drained := make(chan error, 1)
	// This goroutine lives from before "listening" to the end of the
	// drain, so that the goroutine counts logged then and when the proxy
	// stops accepting are the same unless something leaked.
	go func() {
		sig := <-signals
		dctx, cancel := context.WithTimeout(drainCtx, drain)
		defer cancel()
		drained <- p.Shutdown(dctx, "signal", sig.String())
	}()
	if err := p.Serve(ctx, ln); !errors.Is(err, proxy.ErrServerClosed) {
		return err
	}
	var err error
	select {
	case err = <-drained:
	case sig := <-signals:
		log.Warn("second signal: cutting the connections still open", "signal", sig.String())
		cutNow()
		err = <-drained
	}
	if err == nil {
		log.Info("drained; exiting")
	} else {
		log.Info("exiting")
	}
	return nil
}

// newProxyServer builds server mode from the home: the identity, the
// watched authorized keys, PKI mode and, with --enroll, the invitations.
func (c *cli) newProxyServer(ctx context.Context, o proxyOptions, ids *tlsbridge.IdentityWatcher, ops *proxyOps, log *slog.Logger) (*proxy.Server, error) {
	id := ids.CurrentIdentity()
	ops.identity(&id.Certificate)
	opts := authkeys.HomeOptions(c.home)
	opts.Logger = log
	where := opts.Dirs[0]
	if c.store.url != "" {
		// The client keys are the store's; the revocations, the store's
		// and the home's (a key revoked here stays refused).
		f, err := c.followStore(ctx, log)
		if err != nil {
			return nil, err
		}
		if err := ops.follower(f); err != nil {
			return nil, err
		}
		opts.Files, opts.Dirs, where = nil, nil, c.store.url
		opts.Feeds = []authkeys.Feed{f.Feed(StoreAuthorized)}
		opts.RevokedFeeds = []authkeys.Feed{f.Feed(StoreRevoked)}
	}
	// The first handshakes are decided from the admin index, proved
	// complete, while every file is read (docs/design.md, "Early
	// decisions").
	if o.indexDir != "" {
		opts.Index, _ = filepath.Abs(o.indexDir) // checked by checkIndexDir
	} else {
		opts.Logger = slog.New(indexAdvice{log.Handler()})
	}
	store := authkeys.OpenEarly(ctx, opts)
	ops.store("authorized", store)
	ops.afterDrain = append(ops.afterDrain, func(ctx context.Context) { indexBeforeExit(ctx, store, log) })
	pki, err := c.pki()
	if err != nil {
		return nil, err
	}
	srv, err := tlsbridge.NewServer(ids, tlsbridge.ServerOptions{Clients: store, PKI: pki, AllowUnknown: o.enroll, Purpose: c.purpose, Logger: log})
	if err != nil {
		return nil, err
	}
	var enrollHandler http.Handler // a nil interface unless --enroll
	if o.enroll {
		h, err := enroll.NewHandler(enroll.HandlerOptions{Dir: enroll.InvitesDir(c.home), Clients: store, ServerKey: id.Key, Logger: log})
		if err != nil {
			return nil, err
		}
		enrollHandler = h
		ops.closers = append(ops.closers, h)
		log.Info("serving enrollment", "path", enroll.Path, "invitations", enroll.InvitesDir(c.home))
	}
	go func() {
		// Once every file is read: the proxy serves meanwhile.
		select {
		case <-store.Loaded():
		case <-ctx.Done():
			return
		}
		n := store.Len()
		log.Info("identity", "fingerprint", id.Key.Fingerprint(), "authorized_keys", n, "pki", pki != nil)
		if n == 0 && pki == nil && !o.enroll {
			// Skipped files (logged above, with their fix) may hold keys:
			// "authorize one" would have the admin add a key that is there.
			if len(store.Problems()) > 0 {
				log.Warn("no client key could be read: trust files were skipped (above), and every client is refused until they are fixed", "where", where)
			} else {
				log.Warn("no client key is authorized yet: every client is refused until one is (keytool"+c.homeFlag()+" authorize --name NAME FILE)", "where", where)
			}
		}
	}()
	maxStartups, _ := proxy.ParseMaxStartups(o.maxStartupsAll) // checked by checkMaxStartups
	// The response and body timeouts are HTTP mode's alone: NewServer
	// refuses them without HTTP.
	var responseTimeout, bodyTimeout time.Duration
	if o.http {
		responseTimeout, bodyTimeout = o.responseTimeout, o.bodyTimeout
	}
	return proxy.NewServer(proxy.ServerOptions{
		ConnLevel: slog.LevelDebug, // --log-level debug shows them
		TLS:       srv, Target: o.target, HandshakeTimeout: o.handshakeTimeout, IdleTimeout: o.idleTimeout,
		Enroll: enrollHandler, Logger: log, Store: store, KeepOpenOnRevoke: o.keepOpen, Metrics: ops.metrics,
		ProxyProtocol: o.proxyProtocol, HTTP: o.http, MaxStartupsPerSource: o.maxStartups,
		MaxStartups: maxStartups, ResponseHeaderTimeout: responseTimeout, RequestBodyTimeout: bodyTimeout,
	})
}

// startupPrompt asks on the terminal while the proxy starts, and refuses
// (with the trust-host command) afterwards, so that no question appears in
// the middle of traffic. A key accepted "once" at start is accepted again
// for the life of the process, and only that key.
type startupPrompt struct {
	mu      sync.Mutex
	started bool
	once    map[string]string // address → fingerprint accepted once
}

func (s *startupPrompt) AskUnknownHost(h tlsbridge.UnknownHost) (tlsbridge.Answer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fp, ok := s.once[h.Addr]; ok && fp == h.Key.Fingerprint() {
		return tlsbridge.Once, nil
	}
	if s.started {
		return tlsbridge.NonInteractive{}.AskUnknownHost(h)
	}
	a, err := tlsbridge.Terminal{}.AskUnknownHost(h)
	if err == nil && a == tlsbridge.Once {
		s.once[h.Addr] = h.Key.Fingerprint()
	}
	return a, err
}

// AskAnnouncedKey asks about a key the target announces
// (--update-host-keys ask) on the terminal at start only; afterwards the
// key is not pinned.
func (s *startupPrompt) AskAnnouncedKey(a tlsbridge.AnnouncedKey) (tlsbridge.Answer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return tlsbridge.No, nil
	}
	return tlsbridge.Terminal{}.AskAnnouncedKey(a)
}

// AnnouncedKeyNotOffered says on the terminal, at start only, that a key
// the target announces is not asked about: its address holds its bound
// of pins (tlsbridge.AnnouncementNotice). Afterwards the log says it.
func (s *startupPrompt) AnnouncedKeyNotOffered(a tlsbridge.AnnouncedKey, pinned, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		tlsbridge.Terminal{}.AnnouncedKeyNotOffered(a, pinned, most)
	}
}

// newProxyClient builds client mode from the home — the identity, the
// watched trusted hosts, the policy, PKI mode — and checks the target
// once, asking on the terminal about an unknown one.
func (c *cli) newProxyClient(ctx context.Context, o proxyOptions, ids *tlsbridge.IdentityWatcher, ops *proxyOps, log *slog.Logger) (*proxy.Client, error) {
	hopts := knownhosts.HomeOptions(c.home)
	hopts.Logger = log
	if c.store.url != "" {
		// The pinned hosts are the store's; the revocations, the store's
		// and the home's.
		f, err := c.followStore(ctx, log)
		if err != nil {
			return nil, err
		}
		if err := ops.follower(f); err != nil {
			return nil, err
		}
		hopts.Files, hopts.Dirs = nil, nil
		hopts.Feeds = []knownhosts.Feed{f.Feed(StoreTrusted)}
		hopts.RevokedFeeds = []knownhosts.Feed{f.Feed(StoreRevoked)}
	}
	hosts := knownhosts.Open(ctx, hopts)
	ops.store("trusted_hosts", hosts)
	// The start-up check has --handshake-timeout, as each connection has,
	// not counting the time a person spends on the question (the
	// client's dial stops its clock while the terminal asks).
	prompt := &startupPrompt{once: map[string]string{}}
	client, id, pki, err := c.newClientWith(ids, hosts, prompt, log, o.handshakeTimeout)
	if err != nil {
		return nil, err
	}
	log.Info("identity", "fingerprint", id.Key.Fingerprint())
	ops.identity(&id.Certificate)
	p, err := proxy.NewClient(proxy.ClientOptions{
		ConnLevel: slog.LevelDebug, // --log-level debug shows them
		TLS:       client, Target: o.target, HandshakeTimeout: o.handshakeTimeout, IdleTimeout: o.idleTimeout,
		Logger: log, Store: hosts, KeepOpenOnRevoke: o.keepOpen, Metrics: ops.metrics, AcceptHosts: o.acceptHosts,
		Trust: func(conn *tls.Conn) string {
			otherwise := "accepted once"
			if client.AcceptedByDNS(o.target, conn.ConnectionState()) {
				otherwise = trustDNS
			}
			return hostTrust(conn, hosts, o.target, c.purpose, pki != nil, otherwise)
		},
		Explain: func(err error) error {
			// A timeout in the words connect uses for it (handshakeFailure),
			// whichever clock ran out at a connection: the proxy's
			// (*proxy.TargetTimeoutError) or the client's.
			var pt *proxy.TargetTimeoutError
			var te *tlsbridge.HandshakeTimeoutError
			if errors.As(err, &pt) || errors.As(err, &te) {
				return handshakeFailure(err, o.target, o.handshakeTimeout)
			}
			return c.explainRefusal(err, o.target, ids.CurrentIdentity())
		},
	})
	if err != nil {
		return nil, err
	}
	checkTimeout := 2*o.handshakeTimeout + time.Minute // the prompt may wait for a human
	pctx, cancel := context.WithTimeout(ctx, checkTimeout)
	err = p.CheckTarget(pctx)
	cancel()
	prompt.mu.Lock()
	prompt.started = true
	prompt.mu.Unlock()
	var te *proxy.TargetError
	if errors.As(err, &te) {
		// A target that is not TLS is said as connect says it.
		return nil, handshakeFailure(c.explainRefusal(te.Err, o.target, id), o.target, checkTimeout)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// hostTrust says why conn's server key was accepted: "pinned" (for the
// connection's purpose: a pin for another purpose only did not admit it,
// and saying "pinned" of a key --insecure let in hid that it was not
// verified, found by review, 2026-12-05), "PKI" (the CA), else otherwise.
func hostTrust(conn *tls.Conn, hosts *knownhosts.Store, addr, purpose string, pki bool, otherwise string) string {
	cs := conn.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return "unknown"
	}
	leaf := cs.PeerCertificates[0]
	if knownhosts.WithCertificate(hosts.DecidePurpose(addr, purpose, sha256.Sum256(leaf.RawSubjectPublicKeyInfo)), addr, leaf).Verdict == knownhosts.Pinned {
		return "pinned"
	}
	if pki {
		return "PKI"
	}
	return otherwise
}
