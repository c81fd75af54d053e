package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
	"github.com/spf13/pflag"
)

// showCommand makes the show command, with flag variables of its own.
func showCommand() *command {
	var asJSON, verbose bool
	return &command{
		name:    "show",
		uses:    globalHome | globalIdentity,
		args:    "[--json] [-v] [FILE…]",
		summary: "describe keys: type, fingerprint, key ID, thumbprint, attributes",
		help: `Reads each FILE (default: the identity; - for standard input) in any format
keytool knows, and describes every key in it: its fingerprint (the SHA-256
of its SPKI), the same hash as curl --pinnedpubkey takes it, the key ID,
the RFC 7638 thumbprint and the attributes; for OpenSSH keys (key lines,
or ssh-keygen's private key file), also the fingerprint ssh-keygen -l
prints, which hashes another encoding.
-v draws each key's randomart (OpenSSH's VisualHostKey picture) of the
SPKI hash, and for OpenSSH keys the one ssh-keygen -lv draws. --json
prints a JSON array of objects with file, index, type, private,
fingerprint, curl, ssh_fingerprint (OpenSSH keys), key_id, thumbprint and
attributes. A key keytool would refuse as a trusted key or an identity,
for what its use, key_ops or alg member says it is for (encryption, say),
is shown all the same, with a "refused" line naming the member and why
("refused" in --json). A file that cannot be read is reported and the
others still shown; the exit status is then 1.`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			set.BoolVar(&asJSON, "json", false, "print JSON")
			set.BoolVarP(&verbose, "verbose", "v", false, "draw each key's randomart")
		},
		run: func(c *cli, args []string) error {
			if len(args) == 0 {
				p, err := c.identityPath()
				if err != nil {
					return err
				}
				args = []string{p}
			}
			return c.show(args, asJSON, verbose)
		},
	}
}

// keyInfo is what show prints for one key; its JSON form is a stable
// interface for scripts.
type keyInfo struct {
	File        string         `json:"file"`
	Index       int            `json:"index"`
	Type        string         `json:"type"`
	Private     bool           `json:"private"`
	Fingerprint string         `json:"fingerprint"`
	Curl        string         `json:"curl"`                      // the SPKI hash as curl --pinnedpubkey takes it
	SSH         string         `json:"ssh_fingerprint,omitempty"` // what ssh-keygen -l prints, for OpenSSH keys
	KeyID       string         `json:"key_id"`
	Thumbprint  string         `json:"thumbprint"`
	Attributes  jwk.Attributes `json:"attributes"`
	Refused     *refusal       `json:"refused,omitempty"`

	key *jwk.Key
}

// refusal says why keytool refuses a key it shows as a trusted key or an
// identity: the member of a *jwk.UseError, its value and the reason.
type refusal struct {
	Member string `json:"member"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
}

// describe names k, the i-th key of file; ssh says the file held OpenSSH
// key lines, whose readers compare ssh-keygen's fingerprint.
func describe(file string, i int, k *jwk.Key, ssh bool) keyInfo {
	attrs := k.Attrs
	if attrs == nil {
		attrs = jwk.Attributes{}
	}
	sum := k.SPKIHash()
	in := keyInfo{
		File: file, Index: i, Type: k.Algorithm(), Private: k.IsPrivate(),
		Fingerprint: k.Fingerprint(), Curl: "sha256//" + base64.StdEncoding.EncodeToString(sum[:]),
		KeyID: k.KeyID(), Thumbprint: k.Thumbprint(),
		Attributes: attrs, key: k,
	}
	if ssh {
		in.SSH, _ = k.SSHFingerprint()
	}
	var ue *jwk.UseError
	if errors.As(k.CheckUse(), &ue) {
		in.Refused = &refusal{Member: ue.Member, Value: ue.Value, Reason: ue.Reason}
	}
	return in
}

// readShown reads the keys of file as every command does, but for the
// keys marked for anything but signatures, which show describes (with why
// keytool refuses them) as it uses none; it tells whether the file held
// OpenSSH keys: key lines, or a private key of ssh-keygen's (-----BEGIN
// OPENSSH PRIVATE KEY-----, ~/.ssh/id_ed25519), which its owner compares
// with ssh-keygen -l as well.
func (c *cli) readShown(file string) ([]*jwk.Key, bool, error) {
	var data []byte
	if file == "-" {
		// Read standard input once, and hand it to readKeys again.
		var err error
		if data, err = io.ReadAll(io.LimitReader(c.stdin, jwk.MaxFileSize+1)); err != nil {
			return nil, false, fmt.Errorf("reading standard input: %w", err)
		}
		c.stdin = bytes.NewReader(data)
	}
	keys, err := c.readKeysAnyUse(file)
	if err != nil {
		return nil, false, err
	}
	if file != "-" {
		if data, _, err = trustfile.Read(file); err != nil {
			return nil, false, err
		}
	}
	format, _ := jwk.DetectFormat(data)
	return keys, format == jwk.OpenSSH || bytes.Contains(data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")), nil
}

func (c *cli) show(files []string, asJSON, verbose bool) error {
	infos := []keyInfo{}
	failed := false
	for _, file := range files {
		keys, ssh, err := c.readShown(file)
		if err != nil {
			fmt.Fprintf(c.stderr, "keytool show: %s\n", c.advise(err))
			failed = true
			continue
		}
		for i, k := range keys {
			infos = append(infos, describe(file, i, k, ssh))
		}
	}
	if asJSON {
		out, err := json.MarshalIndent(infos, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s\n", out)
	} else {
		for _, in := range infos {
			c.printKeyInfo(in, countIn(infos, in.File) > 1, verbose)
		}
	}
	if failed {
		return &exitError{1}
	}
	return nil
}

// printKeyInfo prints one key: a heading, then a line per name and
// attribute; verbose adds the pictures.
func (c *cli) printKeyInfo(in keyInfo, numbered, verbose bool) {
	kind := "public"
	if in.Private {
		kind = "private"
	}
	fmt.Fprintf(c.stdout, "%s", printable(in.File)) // a glob of a directory gives any name a file has
	if in.Index > 0 || numbered {
		fmt.Fprintf(c.stdout, " [%d]", in.Index)
	}
	fmt.Fprintf(c.stdout, ": %s %s key\n", in.Type, kind)
	fmt.Fprintf(c.stdout, "  fingerprint  %s\n", in.Fingerprint)
	if in.SSH != "" {
		fmt.Fprintf(c.stdout, "  ssh-keygen   %s\n", in.SSH)
	}
	fmt.Fprintf(c.stdout, "  key ID       %s\n  thumbprint   %s\n  curl         %s\n", in.KeyID, in.Thumbprint, in.Curl)
	for _, name := range slices.Sorted(maps.Keys(in.Attributes)) {
		fmt.Fprintf(c.stdout, "  %-12s %s\n", printable(name), attrText(in.Attributes[name]))
	}
	if r := in.Refused; r != nil {
		// The value is escaped already (jwk.UseError), the reason keytool's.
		fmt.Fprintf(c.stdout, "  refused      as a trusted key or an identity: %s %s %s\n", r.Member, r.Value, r.Reason)
	}
	if !verbose {
		return
	}
	fmt.Fprintf(c.stdout, "  randomart of the fingerprint (the SPKI hash):\n%s\n", indent(in.key.Randomart()))
	if art, ok := in.key.SSHRandomart(); ok && in.SSH != "" {
		fmt.Fprintf(c.stdout, "  randomart as ssh-keygen -lv draws it:\n%s\n", indent(art))
	}
}

// indent puts two spaces before every line of a picture.
func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

func countIn(infos []keyInfo, file string) int {
	n := 0
	for _, in := range infos {
		if in.File == file {
			n++
		}
	}
	return n
}

// attrText shows an attribute's value on one line: a string as it is
// (quoted if it holds anything a terminal would act on, or is empty),
// anything else as compact JSON.
func attrText(raw json.RawMessage) string {
	var str string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &str) == nil { // not null, which would decode as ""
		if str == "" {
			return `""`
		}
		return printable(str)
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return printable(string(raw))
	}
	return printable(b.String())
}
