package cli

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// caCommand makes the ca command: the CAs of PKI mode installed in
// HOME/ca.d, each for every purpose or for one (seed 004's trusted CA
// certificates; docs/trust-stores.md, "ca.d").
func caCommand() *command {
	var (
		purpose, name string
		lf            listFlags
		flags         *pflag.FlagSet
	)
	return &command{
		name:    "ca",
		uses:    globalHome | globalPKI,
		args:    "add FILE [--purpose P] [--crl FILE] [--name NAME]  ·  list [--json|--long|--full]  ·  remove NAME|FINGERPRINT",
		summary: "install, list and remove the CAs of PKI mode, for every purpose or one (ca.d)",
		help: `PKI mode admits a peer whose key is not pinned when its certificate chains
to a trusted CA and that CA's CRL does not revoke it. Besides HOME/ca.pem
(with crl.pem, or --ca and --crl), CAs may be installed one file each in
HOME/ca.d, for every purpose or for the connections of one purpose only
(an LDAP server's CA, a pool's CA…):

  ca.d/NAME.pem, ca.d/NAME.crl.pem                  every purpose
  ca.d/PURPOSE/NAME.pem, ca.d/PURPOSE/NAME.crl.pem  PURPOSE only

A connection for purpose P (keytool connect --purpose P, or the Purpose of
a Go client or server) trusts, in this order: the key pinned for the
address (a pin that does not match refuses: no CA rescues it), else the
CAs of P if any is installed, else the general CAs (ca.pem and
ca.d/NAME.pem). The CAs chosen decide alone: when P has CAs, the general
ones are not tried, and a CA for another purpose never admits.

add FILE installs the CA certificates of FILE (PEM, - for standard
input; each must be a CA: basicConstraints CA:TRUE) as ca.d/NAME.pem, or
ca.d/P/NAME.pem with --purpose P, mode 0644. --crl FILE installs their CRL
(PEM or DER, signed by one of them) beside it; adding the same CA again
with --crl replaces its CRL. --name NAME names the file (default: from the
CA's common name). Running programs pick the change up within a second.

list prints PURPOSE (any: every purpose), NAME, SUBJECT, EXPIRES and the
CRL's next update of each CA certificate, ca.pem's included, in 80
columns; -l/--long adds FINGERPRINT (of the CA's key) and FILE, --full
the whole fingerprints, --json every field (an array of objects with
name, purpose, file, crl_file, subject, fingerprint, expires,
crl_next_update).

remove NAME|FINGERPRINT uninstalls every CA of ca.d named NAME (or
PURPOSE/NAME), whose key has that fingerprint (SHA256:…, hex, key ID) or
whose certificate has that SHA-256 fingerprint (as 'openssl x509
-fingerprint -sha256' prints it), and its CRL. ca.pem is not managed here:
edit or delete it.

Examples:
  keytool ca add corp-ldap-ca.pem --purpose ldap --crl corp-ldap.crl
  keytool ca list
  keytool ca remove ldap/corp-ldap-ca`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			flags = set
			set.StringVar(&purpose, "purpose", "", "with add: install the CA for connections of `PURPOSE` only (default: every purpose)")
			set.StringVar(&name, "name", "", "with add: install the CA as `NAME`.pem (default: from its common name)")
			lf.register(set, "with list: ")
		},
		run: func(c *cli, args []string) error {
			if c.caFile != "" {
				return usagef("ca takes the CA FILE as argument: keytool ca add FILE, not --ca")
			}
			if len(args) == 0 {
				return usagef("ca needs a subcommand: add FILE, list or remove NAME|FINGERPRINT")
			}
			sub, args := args[0], args[1:]
			addOnly := flags.Changed("purpose") || flags.Changed("name") || c.crlFile != ""
			switch {
			case sub != "add" && addOnly:
				return usagef("--purpose, --name and --crl go with ca add")
			case sub != "list" && lf.given():
				return usagef("--json, --long and --full go with ca list")
			}
			switch sub {
			case "add":
				if len(args) != 1 {
					return usagef("ca add takes one FILE (- for standard input)")
				}
				return c.caAdd(args[0], purpose, name)
			case "list":
				if len(args) != 0 {
					return usagef("ca list takes no argument")
				}
				return c.caList(lf)
			case "remove":
				if len(args) != 1 {
					return usagef("ca remove takes one NAME or FINGERPRINT")
				}
				return c.caRemove(args[0])
			}
			return usagef("unknown subcommand %q: use add, list or remove", sub)
		},
	}
}

// readInput reads a file given on the command line (- for standard
// input), bounded as trust files are: standard input longer than that is
// refused, never cut — a CA or CRL file cut short would install what came
// before the cut.
func (c *cli) readInput(file string) ([]byte, error) {
	if file == "-" {
		data, err := io.ReadAll(io.LimitReader(c.stdin, trustfile.MaxSize+1))
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		if len(data) > trustfile.MaxSize {
			return nil, fmt.Errorf("standard input: %w: more than the %d MiB a trust file may hold", trustfile.ErrTooLarge, trustfile.MaxSize>>20)
		}
		return data, nil
	}
	data, _, err := trustfile.Read(file)
	return data, err
}

func (c *cli) caAdd(file, purpose, name string) error {
	data, err := c.readInput(file)
	if err != nil {
		return err
	}
	in := tlsbridge.CAInstall{CA: data, Purpose: purpose, Name: name, CAFrom: sourceName(file), CRLFrom: sourceName(c.crlFile), Top: c.home}
	if c.crlFile != "" {
		if in.CRL, err = c.readInput(c.crlFile); err != nil {
			return err
		}
		// InstallCA writes the CRLs alone (0644), but a private key
		// beside them is a CA's key handed over by mistake: said, not
		// passed over.
		if valueHoldsPrivateKey(in.CRL) {
			return fmt.Errorf("%s holds a private key beside the CRL: a CA's key has no place in what is installed; give a file that holds only the CRL", c.crlFile)
		}
	}
	ca, err := tlsbridge.InstallCA(c.layout().CADir(), in)
	if err != nil {
		return err
	}
	for _, cert := range ca.Certificates {
		fmt.Fprintf(c.stdout, "Installed CA %s (key %s)\n", printable(cert.Subject.String()), caFingerprint(cert))
	}
	fmt.Fprintf(c.stdout, "File: %s\n", printable(ca.File))
	if ca.CRLFile != "" {
		fmt.Fprintf(c.stdout, "CRL:  %s\n", printable(ca.CRLFile))
	}
	if purpose == "" {
		fmt.Fprintf(c.stdout, "For every purpose that has no CA of its own.\n")
	} else {
		fmt.Fprintf(c.stdout, "For connections of purpose %s only: they no longer use the general CAs.\n", purpose)
	}
	return nil
}

func (c *cli) caRemove(what string) error {
	if what == "ca.pem" {
		return fmt.Errorf("%s is not managed by ca remove: edit or delete it", c.layout().CA())
	}
	gone, err := tlsbridge.UninstallCA(c.layout().CADir(), c.home, what)
	for _, ca := range gone {
		fmt.Fprintf(c.stdout, "Removed CA %s (%s)\n", printable(ca.File), purposeName(ca.Purpose))
	}
	if len(gone) > 0 {
		c.noteStillTrusted(gone)
	}
	return err
}

// noteStillTrusted says where a CA key that ca remove took out of ca.d is
// still trusted: in ca.pem (which ca does not manage), or installed again
// under another name or purpose. Removed and said nothing more, the admin
// would take the CA for gone while PKI mode still admits what it signs
// (found by review, 2026-12-05).
func (c *cli) noteStillTrusted(gone []tlsbridge.InstalledCA) {
	removed := map[string]bool{}
	for _, ca := range gone {
		for _, cert := range ca.Certificates {
			removed[caFingerprint(cert)] = true
		}
	}
	left, err := c.caInfos()
	if err != nil {
		return // ca list says why
	}
	for _, ca := range left {
		if removed[ca.Fingerprint] {
			fmt.Fprintf(c.stderr, "keytool ca remove: note: the key of CA %q is still trusted by %s (%s): edit or delete it there too\n",
				ca.Subject, printable(ca.File), purposeName(ca.Purpose))
		}
	}
}

// caInfo is one CA certificate in keytool ca list --json.
type caInfo struct {
	Name          string     `json:"name"`
	Purpose       string     `json:"purpose"` // "" for every purpose
	File          string     `json:"file"`
	CRLFile       string     `json:"crl_file,omitempty"`
	Subject       string     `json:"subject"`
	Fingerprint   string     `json:"fingerprint"`
	Expires       time.Time  `json:"expires"`
	CRLNextUpdate *time.Time `json:"crl_next_update,omitempty"`
}

// caInfos lists the CA certificates of PKI mode's files: ca.pem (or
// --ca), then ca.d.
func (c *cli) caInfos() ([]caInfo, error) {
	var out []caInfo
	add := func(name, purpose, file, crlFile string, certs []*x509.Certificate) {
		next := crlNextUpdates(crlFile, certs)
		for _, cert := range certs {
			info := caInfo{Name: name, Purpose: purpose, File: file, CRLFile: crlFile, Subject: cert.Subject.String(),
				Fingerprint: caFingerprint(cert), Expires: cert.NotAfter}
			if t, ok := next[string(cert.RawSubject)]; ok {
				info.CRLNextUpdate = &t
			}
			out = append(out, info)
		}
	}
	caFile, crlFile := c.layout().CA(), c.layout().CRL()
	// Read as PKI mode reads it (the strict-modes rule), as ListCAs reads
	// ca.d: a ca.pem others may have written is an error, not a CA listed.
	var certs []*x509.Certificate
	if _, err := os.Lstat(caFile); err == nil {
		data, _, err := (trustfile.Rule{Top: c.home}).ReadFile(caFile)
		if err != nil {
			return nil, &tlsbridge.PKIFileError{File: caFile, Err: err}
		}
		for _, der := range pemBlocksOf(data, "CERTIFICATE") {
			if cert, err := x509.ParseCertificate(der); err == nil {
				certs = append(certs, cert)
			}
		}
	}
	if _, err := os.Lstat(crlFile); err != nil {
		crlFile = ""
	} else if _, _, err := (trustfile.Rule{Top: c.home}).ReadFile(crlFile); err != nil {
		return nil, &tlsbridge.PKIFileError{File: crlFile, Err: err}
	}
	add(filepath.Base(caFile), "", caFile, crlFile, certs)
	cas, err := tlsbridge.ListCAs(c.layout().CADir(), c.home)
	for _, ca := range cas {
		add(ca.Name, ca.Purpose, ca.File, ca.CRLFile, ca.Certificates)
	}
	return out, err
}

// crlNextUpdates returns, by issuer subject, the next update of the CRLs
// in crlFile that one of certs signed. A CRL dated in the future is left
// out, as PKI mode leaves it out (tlsbridge.CRLClockSkew): its far next
// update would show a CRL as current that PKI mode does not use.
func crlNextUpdates(crlFile string, certs []*x509.Certificate) map[string]time.Time {
	out := map[string]time.Time{}
	notYet := time.Now().Add(tlsbridge.CRLClockSkew)
	for _, der := range pemBlocks(crlFile, "X509 CRL") {
		crl, err := x509.ParseRevocationList(der)
		if err != nil || crl.ThisUpdate.After(notYet) {
			continue
		}
		for _, cert := range certs {
			if crl.CheckSignatureFrom(cert) == nil && crl.NextUpdate.After(out[string(cert.RawSubject)]) {
				out[string(cert.RawSubject)] = crl.NextUpdate
			}
		}
	}
	return out
}

func (c *cli) caList(lf listFlags) error {
	infos, err := c.caInfos()
	if err != nil && infos == nil {
		return err
	}
	if lf.json {
		if infos == nil {
			infos = []caInfo{}
		}
		if jerr := c.printJSON(infos); jerr != nil {
			return jerr
		}
		return err
	}
	if len(infos) == 0 {
		fmt.Fprintf(c.stdout, "No CA: PKI mode is off (install one with: %s)\n", c.command("ca", "add", "FILE"))
		return err
	}
	_ = caTable(c, infos, lf).write(c.stdout, lf.width())
	return err
}

// caTable is the table of ca list and of the PKI section of keytool list.
func caTable(c *cli, infos []caInfo, lf listFlags) *table {
	cols := []column{{title: "PURPOSE"}, {title: "NAME", elastic: true}, {title: "SUBJECT", elastic: true}, {title: "EXPIRES"}, {title: "CRL UNTIL"}}
	if lf.long || lf.full {
		cols = append(cols, column{title: "FINGERPRINT"}, column{title: "FILE", elastic: true, fromLeft: true})
	}
	t := newTable(cols...)
	for _, in := range infos {
		crl := "-"
		if in.CRLNextUpdate != nil {
			crl = in.CRLNextUpdate.UTC().Format(time.DateOnly)
		} else if in.CRLFile != "" {
			crl = "none"
		}
		row := []string{purposeName(in.Purpose), printable(in.Name), printable(in.Subject), in.Expires.UTC().Format(time.DateOnly), crl}
		if lf.long || lf.full {
			row = append(row, lf.fingerprint(in.Fingerprint), printable(c.inHome(in.File)))
		}
		t.add(row...)
	}
	return t
}

// purposeName shows a CA's purpose, or a pin's purposes joined: "any" for
// every purpose.
func purposeName(p string) string {
	if p == "" {
		return "any"
	}
	return printable(p)
}

// caFingerprint is the fingerprint of a CA certificate's key, as keytool
// prints every key's.
func caFingerprint(cert *x509.Certificate) string {
	k, err := jwk.NewPublicKey(cert.PublicKey)
	if err != nil {
		return ""
	}
	return k.Fingerprint()
}
