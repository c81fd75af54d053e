package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/keytool/keytool/internal/dnsname"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// The wiring shared by the commands: where things are in the home, and
// how to build the library objects from the global flags. No trust
// decision is made here.

// logger writes log/slog records to standard error.
func (c *cli) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// loadIdentity loads the identity (-i, else the home's key.*) with the
// home's cert.pem if it exists (PKI mode), else a self-signed certificate
// naming hosts (and, for the home's own key, announcing its next key).
func (c *cli) loadIdentity(hosts ...string) (*tlsbridge.Identity, error) {
	opts, err := certOptions(hosts)
	if err != nil {
		return nil, err
	}
	if c.identity == "" {
		return tlsbridge.LoadHomeIdentity(c.keyHome(), opts)
	}
	certFile, err := tlsbridge.HomeCertFile(c.layout().Cert())
	if err != nil {
		return nil, err
	}
	return tlsbridge.LoadIdentity(c.identity, certFile, opts)
}

// watchIdentity is loadIdentity kept current until ctx ends: a changed
// key, cert.pem or next key applies from the next handshake, and a change
// that does not load is logged and refused (docs/design.md, "Identity
// reload").
func (c *cli) watchIdentity(ctx context.Context, log *slog.Logger, onChange func(*tlsbridge.Identity), hosts ...string) (*tlsbridge.IdentityWatcher, error) {
	files, public, top := tlsbridge.HomeIdentityFiles(c.keyHome()), tlsbridge.HomePublicFiles(c.keyHome()), c.keyHome()
	if c.identity != "" {
		// Like ssh -i, a key given by name is checked alone, not the
		// directories above it; its public half is the pub_NAME.* beside
		// it that tlsbridge.LoadIdentity checks.
		files, public, top = []string{c.identity, c.layout().Cert()}, home.PublicBeside(c.identity), ""
	}
	return tlsbridge.WatchIdentity(ctx, tlsbridge.IdentityWatchOptions{
		Files: files, Public: public, Home: top, Logger: log, OnChange: onChange,
		Load: func() (*tlsbridge.Identity, error) { return c.loadIdentity(hosts...) },
	})
}

// hostStore loads the home's trusted hosts and revoked keys, once.
func (c *cli) hostStore() *knownhosts.Store {
	opts := knownhosts.HomeOptions(c.home)
	opts.Logger = c.logger()
	return knownhosts.Load(opts)
}

// adminHostStore is hostStore for a command that looks up only what l
// lists (knownhosts.LoadFor: the admin index). finish records the
// command's changes in the index.
func (c *cli) adminHostStore(l knownhosts.Lookups) (hosts *knownhosts.Store, finish func()) {
	opts := knownhosts.HomeOptions(c.home)
	opts.Logger = c.logger()
	return knownhosts.LoadFor(opts, l)
}

// pki returns PKI mode's CAs and CRLs: --ca/--crl, else the home's
// ca.pem and crl.pem when they exist, and the CAs installed in the home's
// ca.d (keytool ca add); nil when there is no CA.
func (c *cli) pki() (*tlsbridge.PKI, error) {
	ca, crl := c.caFile, c.crlFile
	if ca == "" {
		// Lstat: a link to nothing is a file to refuse, not "no CA".
		if _, err := os.Lstat(c.layout().CA()); err == nil {
			ca = c.layout().CA()
		}
	}
	if crl == "" && c.caFile == "" {
		// Lstat: a dangling crl.pem must fail closed, not mean "no CRL".
		if _, err := os.Lstat(c.layout().CRL()); err == nil {
			crl = c.layout().CRL()
		}
	}
	if ca == "" && crl != "" {
		return nil, fmt.Errorf("--crl %s needs the CA that signed it: --ca FILE", crl)
	}
	dir := c.layout().CADir()
	if _, err := os.Lstat(dir); err != nil {
		dir = ""
	}
	if ca == "" && dir == "" {
		return nil, nil
	}
	return tlsbridge.LoadPKI(tlsbridge.PKIOptions{CA: ca, CRL: crl, Dir: dir, Home: c.home})
}

// policy returns the host-key policy of --strict-host-keys and --insecure.
func (c *cli) policy() (tlsbridge.Policy, error) {
	if c.insecure {
		return tlsbridge.Insecure, nil
	}
	p, err := tlsbridge.ParsePolicy(c.strictHostKeys)
	if err != nil {
		return 0, &usageError{err.Error()}
	}
	return p, nil
}

// newClient builds the client side: the identity, the pinned hosts
// (hosts, which the caller may keep watching), the policy, PKI mode (also
// returned, nil when off), and the prompt, logger and handshake timeout
// (the TCP connection and the handshake together, a person's answer not
// counted: tlsbridge.ClientOptions.HandshakeTimeout) the caller chose.
func (c *cli) newClient(hosts *knownhosts.Store, prompt tlsbridge.Prompt, log *slog.Logger, timeout time.Duration) (*tlsbridge.Client, *tlsbridge.Identity, *tlsbridge.PKI, error) {
	id, err := c.loadIdentity()
	if err != nil {
		return nil, nil, nil, err
	}
	return c.newClientWith(id, hosts, prompt, log, timeout)
}

// newClientWith is newClient presenting the identity of src.
func (c *cli) newClientWith(src tlsbridge.IdentitySource, hosts *knownhosts.Store, prompt tlsbridge.Prompt, log *slog.Logger, timeout time.Duration) (*tlsbridge.Client, *tlsbridge.Identity, *tlsbridge.PKI, error) {
	id := src.CurrentIdentity()
	policy, err := c.policy()
	if err != nil {
		return nil, nil, nil, err
	}
	if policy == tlsbridge.Ask || policy == tlsbridge.AcceptNew {
		// A host's key may be pinned on first contact: into the home,
		// which must be there (connect -i with a mistyped -H pinned into
		// a new one, found by review), the default one made private.
		if err := c.homeToWrite(); err != nil {
			return nil, nil, nil, err
		}
	}
	pki, err := c.pki()
	if err != nil {
		return nil, nil, nil, err
	}
	opts := tlsbridge.ClientOptions{Hosts: hosts, Policy: policy, Prompt: prompt, PKI: pki, Logger: log, Purpose: c.purpose, HandshakeTimeout: timeout}
	if err := c.hostDNS.options(&opts); err != nil {
		return nil, nil, nil, err
	}
	if err := c.updateHostKeysOptions(&opts); err != nil {
		return nil, nil, nil, err
	}
	cli, err := tlsbridge.NewClient(src, opts)
	return cli, id, pki, err
}

// certOptions turns NAME,… arguments into certificate names: IP literals
// become IP SANs, anything else a DNS name.
func certOptions(hosts []string) (tlsbridge.CertOptions, error) {
	var names []string
	for _, h := range hosts {
		for _, name := range strings.Split(h, ",") {
			if name = strings.TrimSpace(name); name != "" {
				if err := checkCertName(name); err != nil {
					return tlsbridge.CertOptions{}, err
				}
				names = append(names, name)
			}
		}
	}
	return tlsbridge.NamesOptions(names...), nil
}

// checkCertName refuses a --host that no client could ever match: the
// certificate would carry it as a DNS name, silently, and a client
// dialling the host would be told the certificate does not name it. The
// likely slips are a port or a URL (db.example:8443, https://db.example).
func checkCertName(name string) error {
	if net.ParseIP(strings.Trim(name, "[]")) != nil {
		return nil
	}
	if u, err := url.Parse(name); err == nil && u.Host != "" && checkCertName(u.Hostname()) == nil {
		return usagef("--host %q: a certificate names a host, not a URL: --host %s", name, u.Hostname())
	}
	if host, port, err := net.SplitHostPort(name); err == nil && isDigits(port) && checkCertName(host) == nil {
		return usagef("--host %q: a certificate names a host, not a port: --host %s", name, host)
	}
	if validCertDNSName(name) {
		return nil
	}
	return usagef("--host %q is not a DNS name or IP address (a name is labels of letters, digits, '-' and '_' joined by '.', the first one may be '*')", name)
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// validCertDNSName reports whether name can be a DNS name of a
// certificate: a host's name, or a wildcard for the names one label
// under a domain (*.example.com).
func validCertDNSName(name string) bool {
	return dnsname.Valid(strings.TrimPrefix(name, "*."))
}

// explainRefusal turns the TLS alert a server sends when it refuses our
// key into what happened and what to do. The alert texts are crypto/tls's
// (alert.go) for the alerts servers send about a client certificate:
// OpenSSL sends "certificate revoked" (44) when its CRL lists the client,
// and then authorizing the key again would not help.
func (c *cli) explainRefusal(err error, addr string, id *tlsbridge.Identity) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "remote error: tls: revoked certificate") {
		return &revokedByServerError{addr: addr, key: id.Key, err: err}
	}
	for _, alert := range []string{"remote error: tls: bad certificate", "remote error: tls: certificate required", "remote error: tls: unknown certificate", "remote error: tls: access denied"} {
		if strings.Contains(msg, alert) {
			return &refusedError{addr: addr, key: id.Key, pub: c.command("pub"), err: err}
		}
	}
	return err
}

// revokedByServerError means a server said this client's key (or its
// certificate) is revoked: no authorization lets it in again.
type revokedByServerError struct {
	addr string
	key  *jwk.Key
	err  error
}

func (e *revokedByServerError) Error() string {
	return fmt.Sprintf("%s has revoked this client's key %s; it will not be let in again by authorizing it: ask its administrator\n(the server said: %v)", e.addr, e.key.Fingerprint(), e.err)
}

func (e *revokedByServerError) Unwrap() error { return e.err }

// refusedError means a server refused this client's key. Go servers,
// keytool's included, send the same alert (bad certificate) for a key they
// revoked as for one they do not know: crypto/tls lets VerifyConnection
// choose no other. The message says so.
type refusedError struct {
	addr string
	key  *jwk.Key
	pub  string // the command that prints the public key
	err  error
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("%s does not authorize this client's key %s; %s\n"+
		"(authorizing it does not help if the server revoked this key, or lets it in only from other networks or until a time now past: the server's log names the reason, and only its administrator can change it)\n"+
		"(the server said: %v)", e.addr, e.key.Fingerprint(), askToAuthorize(e.pub), e.err)
}

// askToAuthorize is how a client's key gets into a server that refused
// it: the command the server's administrator runs, with the client's
// public key as printed by pub (the command that prints it).
func askToAuthorize(pub string) string {
	return "ask its administrator to run: keytool authorize --name NAME FILE (on the server)\n" +
		"with FILE holding this client's public key, printed by: " + pub
}

func (e *refusedError) Unwrap() error { return e.err }
