package cli

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// notAFormat refuses a -f that names no format. ssh-keygen's -f is the
// key file, so "keytool gen -f mykey" is a habit; gen and pub keep -f for
// the format (as they always had it, and as pub -f pem is documented), and
// say how to name the file instead: suggestion is the command line that
// does (docs/cli.md, gen).
func notAFormat(value, how, suggestion string) error {
	if formatNames[strings.ToLower(value)] {
		_, err := jwk.ParseFormat(value)
		return &usageError{err.Error()} // a format, not one keytool writes
	}
	return usagef("-f takes a format (jwk or pem), not %q; %s, use: %s", value, how, suggestion)
}

// formatNames are formats keytool does not write: -f with one of them is
// a wrong format, not a file name.
var formatNames = map[string]bool{"der": true, "pkcs1": true, "pkcs8": true, "sec1": true, "openssh": true, "ssh": true,
	"rfc4716": true, "pkcs12": true, "p12": true, "pfx": true, "x509": true, "jwks": true}

// genCommand makes the gen command, with flag variables of its own.
func genCommand() *command {
	var (
		typ    string
		format string
		hosts  []string
		force  bool
		next   bool
		keep   bool
		flags  *pflag.FlagSet
	)
	return &command{
		name:    "gen",
		uses:    globalHome | globalIdentity,
		args:    "[-t TYPE] [-f jwk|pem] [--host NAME,…] [--next] [--force]  ·  --host NAME,… --keep-key",
		summary: "create this machine's identity: a private key and its public half",
		help: `Writes the private key to HOME/key.json (or key.pem with -f pem), mode 0600,
and its public half to HOME/pub_key.json, mode 0644, creating HOME (0700) if
needed. With -i FILE the private key goes to FILE and the public half beside
it, as pub_<name>; FILE may not be a file of the home's identity (key.*,
key.next.*), which gen makes without -i — nor of any directory holding
a home's key — nor have a public half that is one of a home's (pub_key.*).
Every command that loads -i FILE refuses a pub_<name> beside it that holds
another key. The public half of the key replaced is removed before the new
key is written, and the new one written after it. An existing identity is
never replaced without --force.

--host NAME,… saves DNS names and IP addresses in the private key: the
identity's self-signed certificate names them from then on (cert --host and
proxy --host name others for one run). A client that pinned this key
without an address — its pub_key.json copied as it is into the client's
trusted_hosts.d/ — admits it only where the certificate names the host it
dials. The public half leaves the names out.

--keep-key with --host saves the names in the existing identity and keeps
its key (as ssh-keygen -c changes a key's comment in place): the private
key file is rewritten, atomically and mode 0600, with the same key, type,
format and other attributes, and the public half, which leaves names out,
is not touched — every pin of the key still holds. The names given replace
those saved before (they are not added to them); --host is required.
-t, -f, --force and --next make or write a new key, and are refused with
it. A running 'keytool proxy' on the identity presents the new names from
its next handshake, without a restart — unless it was started with --host,
whose names it keeps for its run, or presents a CA-issued cert.pem, whose
names are the CA's. A link is written through: the file it names is
rewritten, and the link stays. The file is put in place only if it still
holds what was read: changed meanwhile (an editor, config management),
it is left as it is and gen says to run it again. A key in a form keytool
reads but does not write — an OpenSSH private key, OpenSSL's EC or RSA PRIVATE
KEY — is refused, unchanged: rewritten, its own tools would no longer
read it. So is a PKCS #8 key without PEM headers (OpenSSL's form, nginx's
key) that -i names or the home's key links to: OpenSSL refuses a key
block with headers, where the names would go.

--next makes the home's next key instead: HOME/key.next.json (0600) and
pub_key.next.json (0644), beside the identity, which stays. The identity's
self-signed certificate announces the next key from then on (a running
proxy picks it up without a restart), and clients that connect and verify
the current key pin the next one too (--update-host-keys); 'keytool
rotate' makes it the identity (docs/rotation.md). Without --host it keeps
the identity's certificate names, and without -t the identity's type; a
type weaker than the identity's (a smaller curve or RSA modulus, or RSA
after ec384) is refused, as its peers would refuse to learn it. The next
key signs its own announcement: peers learn only keys whose holder did.
A new identity (--force) keeps the next key and announces it, and gen
says so; one weaker than the new identity is refused, as the home would
not load with it. Without --force, a next key with no identity beside it
(key.* removed) is refused too, with the choices: its peers may have been
told it comes next.

In PKI mode (a CA-issued HOME/cert.pem), gen makes no new identity,
--force or not: the certificate would not fit the new key, and the home
would not load. gen gives the mv that keeps it aside
(HOME/cert.old.<UTC time>.pem), then the gen command again.

gen and rotate on one home take turns, through its lock file
HOME/.keytool.lock (0600): the private key and its public half are always
one run's. A lock file that cannot be used is warned of, with the fix,
and the key is written all the same.

Types: ec256 (ECDSA P-256, the default), ec384, ec521, rsa2048, rsa3072,
rsa4096, ed25519.`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			flags = set
			set.StringVarP(&typ, "type", "t", string(jwk.EC256), "key `TYPE`")
			set.StringVarP(&format, "format", "f", "jwk", "file `FORMAT`: jwk or pem")
			set.StringSliceVar(&hosts, "host", nil, "DNS `NAME`s and IP addresses the identity's certificate names (comma-separated)")
			set.BoolVar(&force, "force", false, "replace an existing identity")
			set.BoolVar(&next, "next", false, "make the home's next key (key.next.*), which the identity announces and keytool rotate makes current")
			set.BoolVar(&keep, "keep-key", false, "with --host: save the names in the existing identity, replacing those saved before, and keep its key")
		},
		run: func(c *cli, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if keep {
				if err := keepKeyUsage(flags, hosts); err != nil {
					return err
				}
				opts, err := certOptions(hosts)
				if err != nil {
					return err
				}
				return c.genKeepKey(opts, hosts)
			}
			t, err := jwk.ParseType(typ)
			if err != nil {
				return &usageError{err.Error()}
			}
			f, err := jwk.ParseFormat(format)
			if err != nil {
				args := []string{"gen"}
				if t != jwk.EC256 {
					args = append(args, "-t", string(t))
				}
				if force {
					args = append(args, "--force")
				}
				if c.identity != "" { // -i names the file already
					return notAFormat(format, "-i names the key file already", c.command(args...))
				}
				return notAFormat(format, "to write the key to a file", c.command(append([]string{"-i", shellQuote(format)}, args...)...))
			}
			opts, err := certOptions(hosts)
			if err != nil {
				return err
			}
			// The flags that ask for this key again, for the advice of a
			// refusal: --force alone would make a key of the default type.
			var again []string
			if next {
				again = append(again, "--next")
			}
			// A next key without -t takes the identity's type, so -t
			// ec256 given with --next is repeated too.
			typed := flags.Changed("type")
			if t != jwk.EC256 || next && typed {
				again = append(again, "-t", string(t))
			}
			if f != jwk.JWK {
				again = append(again, "-f", format)
			}
			if len(hosts) > 0 {
				again = append(again, "--host", shellQuote(strings.Join(hosts, ",")))
			}
			if next {
				if !typed {
					t = "" // the identity's type: a rotation keeps it
				}
				return c.genNext(t, f, opts, force, again)
			}
			// Names asked for an identity that exists are most often
			// meant for its key: the refusal offers --keep-key first.
			var keepCmd string
			if len(hosts) > 0 {
				keepCmd = c.command("gen", "--host", shellQuote(strings.Join(hosts, ",")), "--keep-key")
			}
			return c.gen(t, f, opts, force, again, keepCmd)
		},
	}
}

// makeKeyDir makes the directory of the identity gen writes at keyPath.
// The home's identity is written only where it is read from (the
// strict-modes rule, up to the home, as tlsbridge.ReadHomeKey reads it):
// a home another user owns or may write, or their link to a directory of
// theirs, would take the private key where they choose. A key -i names is
// written where it says, as ssh-keygen -f writes one.
func (c *cli) makeKeyDir(keyPath string) error {
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return err
	}
	if c.identity != "" {
		return nil
	}
	if err := (trustfile.Rule{Top: c.home}).CheckDir(c.home); err != nil {
		return fmt.Errorf("not writing the identity into %s: %w", c.home, err)
	}
	return nil
}

// gen makes the identity; again is the flags given (-t, -f, --host), which
// the advice of a refusal repeats, and keepCmd the gen --keep-key command
// it offers first when names were given ("" when none were).
func (c *cli) gen(t jwk.Type, f jwk.Format, names tlsbridge.CertOptions, force bool, again []string, keepCmd string) error {
	if err := c.homesOwnByName(); err != nil {
		return err
	}
	keyPath := c.identity
	if keyPath == "" {
		keyPath = filepath.Join(c.home, "key"+f.Ext())
	}
	if err := c.makeKeyDir(keyPath); err != nil {
		return err
	}
	pubPath := home.PublicOf(keyPath, f.Ext())
	pubFiles := home.PublicBeside(keyPath) // pub_key.* for the home's, pub_NAME.* for -i
	if err := publicOnly(c.identity); err != nil {
		return err
	}
	if err := c.sshPrivateKey(c.identity); err != nil {
		return err
	}
	// Refused before a key is made (an RSA key takes a while), and again
	// under the lock, below.
	retry := c.command(append([]string{"gen"}, again...)...)
	if force {
		retry = c.withForce(append([]string{"gen"}, again...))
	}
	if _, _, err := c.mayGen(keyPath, force, again, keepCmd, retry); err != nil {
		return err
	}
	k, err := jwk.Generate(t)
	if err != nil {
		return err
	}
	tlsbridge.SaveNames(k, names)

	// The lock of the identity's writers, held from the look at what is
	// there to the last write: another gen or a rotate at the same moment
	// comes wholly before or after this one, and the key and its public
	// half are one run's (docs/design.md, "Concurrent writers").
	unlock, done, err := c.lockIdentity(filepath.Dir(keyPath))
	if err != nil {
		return err
	}
	defer unlock()
	existing, others, err := c.mayGen(keyPath, force, again, keepCmd, retry) // another gen may have made one meanwhile
	if err != nil {
		return err
	}
	// The home's next key stays beside the new identity, which announces
	// it: one weaker than the new key would make the home refuse to load
	// (tlsbridge.CheckNextKey), and a running proxy go on presenting the
	// key replaced here — the key a compromise has gen --force replace.
	nextNote, err := c.nextBeside(k, retry)
	if err != nil {
		return err
	}
	replaced := describeKeyFiles(existing) // what --force replaces, described before it is gone
	if c.identity == "" {
		// A next key's public half where the home has no next key is of a
		// next key that is gone (removed by hand, or with the identity):
		// every load refuses it. It goes with the identity's, as
		// LoadOrGenerateHomeIdentity's first key takes it.
		if file, err := jwk.FindNextKey(c.home); err == nil && file == "" {
			pubFiles = slices.Concat(pubFiles, c.layout().NextPublic())
		}
	}

	// The public halves go first, then the key is written, then its
	// public half: killed (or refused) in between, the key has its own
	// public half or none, never the key's it replaces — which a load
	// refuses (tlsbridge.PublicKeyError), a watching server keeping the
	// replaced key meanwhile (docs/design.md, "Concurrent writers").
	removed, err := removePublicHalves(pubFiles, keyPath)
	if err != nil {
		return err
	}
	if err := writeRoleKey(keyPath, others, len(others) < len(existing), k, f, force); errors.Is(err, fs.ErrExist) {
		return c.refuseExisting(again, keepCmd, keyPath) // another process won the race
	} else if err != nil {
		return err
	}
	if err := jwk.WritePublicKeyFile(pubPath, k, f, jwk.Overwrite); err != nil {
		return fmt.Errorf("the identity is in %s, but its public half could not be written (run: %s): %w", keyPath, c.pubInto(pubPath, f), err)
	}
	for _, r := range replaced {
		fmt.Fprintf(c.stdout, "Replaced the identity %s\n", r)
	}
	// Public halves left by an identity that no longer exists (replaced
	// just now, or deleted by hand) would show a key that is not this
	// machine's.
	for _, stale := range removed {
		switch {
		case stale == pubPath:
		case slices.Contains(c.layout().NextPublic(), stale):
			fmt.Fprintf(c.stdout, "Removed %s: the public half of a next key that is gone\n", stale)
		default:
			fmt.Fprintf(c.stdout, "Removed %s: the public half of an identity that is gone\n", stale)
		}
	}
	done()
	fmt.Fprintf(c.stdout, "Generated %s key in %s\nPublic key in %s\nFingerprint: %s\nKey ID: %s\n",
		k.Algorithm(), keyPath, pubPath, k.Fingerprint(), k.KeyID())
	if names, _ := k.Attrs.List(jwk.AttrNames); len(names) > 0 {
		fmt.Fprintf(c.stdout, "Certificate names: %s\n", strings.Join(names, ", "))
	}
	if nextNote != "" {
		fmt.Fprintln(c.stdout, nextNote)
	}
	return nil
}

// removePublicHalves removes the public halves (files) of the key gen is
// about to write at keyPath, before it writes it, and returns those it
// removed. Written after the key, as they are, a kill or a failure in
// between leaves the key with its own public half or none: not with one
// of the key it replaced, which no file of the home keeps — a state a
// load cannot tell from a hand edit, so it refuses it
// (tlsbridge.PublicKeyError), and a watching server that cannot wait for
// gen's lock kept presenting the replaced key (docs/design.md,
// "Concurrent writers").
func removePublicHalves(files []string, keyPath string) ([]string, error) {
	removed, err := atomicfile.Remove(files)
	if err != nil {
		return removed, fmt.Errorf("a public half of the key to be replaced could not be removed, so %s was not written: %w", keyPath, err)
	}
	return removed, nil
}

// pubInto is the command that writes the public half of the key gen
// wrote into pubPath, in format f: keytool pub of the home's identity, of
// its next key, or of the file -i names.
func (c *cli) pubInto(pubPath string, f jwk.Format) string {
	args := []string{"pub"}
	if f == jwk.PEM {
		args = append(args, "-f", "pem")
	}
	if strings.HasPrefix(filepath.Base(pubPath), "pub_key.next") && c.identity == "" {
		args = append(args, shellQuote(filepath.Join(c.home, "key.next"+filepath.Ext(pubPath))))
	}
	return c.command(args...) + " > " + shellQuote(pubPath)
}

// mayGen looks at what gen would write the identity at keyPath beside, and
// refuses what it may not: an identity, without --force
// (refuseExisting), and what a home keeps for another key (leftBehind).
// It returns the identity files there (identityFiles).
func (c *cli) mayGen(keyPath string, force bool, again []string, keepCmd, retry string) (existing, others []string, err error) {
	existing, others = c.identityFiles(keyPath)
	if len(existing) > 0 && !force {
		return nil, nil, c.refuseExisting(again, keepCmd, existing...)
	}
	if err := c.leftBehind(len(existing) > 0, force, retry); err != nil {
		return nil, nil, err
	}
	return existing, others, nil
}

// leftBehind refuses a new identity of the home (gen without -i) beside
// what the home keeps for an identity that a new key is not, nothing
// written (exists: the home has an identity; retry: this gen again):
//
//   - a CA-issued cert.pem, --force or not. It certifies the key replaced
//     (or one removed by hand), never the new one: left in place, the home
//     no longer loaded (every command, a restart and a running proxy's
//     reload failed), or presented a chain for another key (found by
//     review, 2026-12-05). Moved aside by gen itself, PKI mode would end
//     without the user's word: every client verifying through the CA
//     would refuse the self-signed certificate presented then. So gen
//     says what a new key means for cert.pem and gives the mv that keeps
//     it aside, and the user runs it — nothing is lost, nothing is a
//     surprise (docs/cli.md, gen).
//   - without --force, a next key with no identity beside it
//     (*tlsbridge.NextKeyWithoutIdentityError, as LoadHomeIdentity says of
//     such a home): its peers may have been told it comes next, and a new
//     identity beside it would be one they were not told of.
func (c *cli) leftBehind(exists, force bool, retry string) error {
	if c.identity != "" {
		return nil
	}
	cert := c.layout().Cert()
	if _, err := os.Lstat(cert); err == nil {
		whose := "the identity's key"
		if !exists {
			whose = "a key the home no longer holds"
		}
		return fmt.Errorf("%s is a CA-issued certificate%s for %s: a new key would not fit it, and the home would not load; nothing was written. Move it aside, keeping it, then make the key: %s && %s; then install the certificate your CA issues for the new key as %s (until then the identity presents a self-signed certificate, which clients verifying through the CA refuse)",
			cert, describeKeyFile(cert), whose, c.certAside(cert), retry, cert)
	}
	if exists || force {
		return nil
	}
	if next, err := jwk.FindNextKey(c.home); err == nil && next != "" {
		return &tlsbridge.NextKeyWithoutIdentityError{Home: c.home, File: next}
	}
	return nil
}

// certAside is the mv that moves the home's cert.pem (cert) aside, to a
// name the home never reads (home.Dir.CertAside: cert.old.<UTC time>.pem).
func (c *cli) certAside(cert string) string {
	aside := home.Dir(filepath.Dir(cert)).CertAside(time.Now().UTC().Format("20060102T150405Z"))
	return "mv " + shellQuote(cert) + " " + shellQuote(aside)
}

// nextBeside checks the home's next key (key.next.*, from gen --next)
// against k, the identity gen is about to write beside it, and returns
// the note gen prints of it: the next key stays, announced by the new
// identity and made current by rotate. A next key weaker than k is
// refused, nothing written: LoadHomeIdentity refuses such a home
// (CheckNextKey), so every command, a restart and a running proxy's
// reload would fail, the proxy presenting the replaced key meanwhile
// (found by review, 2026-12-05). Nothing is checked for -i, which has no
// next key, nor for a next key that does not load: the home refused it
// before, and gen, the way to replace a bad identity, is not stopped.
// retry is the gen command that makes k's kind of key again.
func (c *cli) nextBeside(k *jwk.Key, retry string) (string, error) {
	if c.identity != "" {
		return "", nil
	}
	file, err := jwk.FindNextKey(c.home)
	if err != nil || file == "" {
		return "", nil
	}
	next, err := tlsbridge.ReadHomeKey(c.home, file)
	if err != nil {
		return "", nil
	}
	rm := "rm " + shellQuote(file)
	for _, p := range c.layout().NextPublic() {
		if _, err := os.Lstat(p); err == nil {
			rm += " " + shellQuote(p)
		}
	}
	if err := tlsbridge.CheckNextKey(k, next); err != nil {
		return "", fmt.Errorf("the home's next key %s (%s, %s) is weaker than the new %s identity: the home would not load with it (its peers refuse a rotation to a weaker key), and a running proxy would go on presenting the identity it replaces; nothing was written. Remove the next key (%s), or make one at least as strong first (%s), then: %s",
			file, next.Algorithm(), next.Fingerprint(), k.Algorithm(), rm,
			c.command("gen", "--next", "--force", "-t", string(k.Type())), retry)
	}
	return fmt.Sprintf("The next key %s (%s) stays: the new identity announces it, and rotate makes it current. If the identity replaced was compromised, so may it be: remove it (%s)",
		file, next.Fingerprint(), rm), nil
}

// writeRoleKey writes k, in format f, to path, the file of a private key's
// role in the home (the identity, the next key) or the file -i names;
// exists says whether path is there, and others are the role's files of
// other formats (key.json, for -f pem), which go: one alone is replaced
// through its own name (replaceKeyFile), so that the role has one file at
// every moment. Without force, path is created only if it is not there
// (fs.ErrExist otherwise: another process won the race).
func writeRoleKey(path string, others []string, exists bool, k *jwk.Key, f jwk.Format, force bool) error {
	if len(others) == 1 && !exists {
		return replaceKeyFile(others[0], path, k, f)
	}
	mode := jwk.CreateNew
	if force {
		mode = jwk.Overwrite
	}
	if err := jwk.WritePrivateKeyFile(path, k, f, mode); err != nil {
		return err
	}
	var err error
	for _, p := range others {
		if err = os.Remove(p); err != nil {
			err = fmt.Errorf("the new key is in %s, but the old %s could not be removed: %w", path, p, err)
			break
		}
	}
	if len(others) > 0 {
		// Back after a power loss, the old key beside the new would be a
		// home of two identities, which loads nowhere: synced, those
		// removed before a failure too.
		if serr := atomicfile.SyncDir(filepath.Dir(others[0])); serr != nil {
			err = errors.Join(err, fmt.Errorf("the new key is in %s, but the removal of the old could not be synced, so it may not survive a power loss: %w", path, serr))
		}
	}
	return err
}

// replaceKeyFile replaces the private key file old with k, in format f,
// at path — old's role (the identity, the next key) in another format's
// name, which does not exist — so that the home holds one key file of the
// role at every moment: k is first written over old, atomically (readers
// parse a key by its content, not its name), then old is renamed to path.
// Written at path, then old removed, a kill or a crash in between left
// both, and a home of two identities, or two next keys, loads nowhere
// until one is removed by hand (found by review, 2026-12-05).
func replaceKeyFile(old, path string, k *jwk.Key, f jwk.Format) error {
	if err := jwk.WritePrivateKeyFile(old, k, f, jwk.Overwrite); err != nil {
		return err
	}
	if err := os.Rename(old, path); err != nil {
		return fmt.Errorf("the new key is in %s, still under the name of the key it replaces: %w", old, err)
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// homesOwnByName refuses a -i FILE that is a file of the home's identity
// (key.*, key.next.*): keytool -i key.pem gen run in the home directory,
// as gen -f key.pem's advice has it. -i writes a key file as any other,
// so beside key.json it would make a second identity, which nothing
// loads, and write its public half over pub_key.json, the identity's —
// without the home's lock, its rule or its next key's check (found by
// review, 2026-12-05). gen without -i makes the home's identity.
//
// The home is the one the command uses, or any directory that holds a key
// of a home's (key.*, key.next.*): keytool -i key.pem gen run in a
// service's home, KEYTOOL_HOME naming another, made the same second
// identity there, and rewrote its pub_key.json (found by review,
// 2026-12-05).
//
// Nor may the public half gen writes beside FILE (pub_ and its name
// without extension) be one of a home's: -i key, key.txt or key.next in
// a home have theirs written as pub_key.json, key.next.txt as
// pub_key.next.json — the public half of the home's identity or next
// key, replaced by another key's, so that the home no longer loaded
// (found by review, 2026-12-06).
func (c *cli) homesOwnByName() error {
	if c.identity == "" {
		return nil
	}
	name := filepath.Base(c.identity)
	next := slices.Contains(home.NextNames(), name)
	stem := strings.TrimSuffix(name, filepath.Ext(name))
	if !next && !slices.Contains(home.IdentityNames(), name) {
		if stem != "key" && stem != "key.next" {
			return nil
		}
		// Not a key file of the home, but its public half would be.
		dir := filepath.Dir(c.identity)
		if !c.isHomeFile(c.identity, name) && len(homeKeyFiles(dir)) == 0 {
			return nil
		}
		return fmt.Errorf("%s would have its public half written as %s, which is the public half of the home %s's %s: -i never writes it (the home would no longer load); give the key file another name",
			c.identity, filepath.Join(dir, "pub_"+stem+".*"), dir, map[bool]string{true: "next key", false: "identity"}[stem == "key.next"])
	}
	where, flag := c.keyHome(), c.homeFlag()
	if !c.isHomeFile(c.identity, name) {
		dir := filepath.Dir(c.identity)
		if len(homeKeyFiles(dir)) == 0 {
			return nil
		}
		where, flag = dir, " -H "+shellQuote(dir)
	}
	args := "gen"
	if next {
		args += " --next"
	}
	if filepath.Ext(name) == ".pem" {
		args += " -f pem"
	}
	return fmt.Errorf("%s is a file of the home %s's identity, which -i does not write (another key there would be a second identity, which the home cannot load, and its public half would replace the identity's); gen makes the home's own without -i: keytool%s %s",
		c.identity, where, flag, args)
}

// homeKeyFiles returns the key files of a home's that dir holds: its
// identity (key.*) and its next key (key.next.*), in any format.
func homeKeyFiles(dir string) []string {
	h := home.Dir(dir)
	var files []string
	for _, p := range slices.Concat(h.Identity(), h.Next()) {
		if _, err := os.Lstat(p); err == nil {
			files = append(files, p)
		}
	}
	return files
}

// identityFiles returns the identity files at keyPath that gen finds
// there, which --force replaces: keyPath, if it exists, then — for the
// home's identity — those in the other formats (key.pem beside
// key.json), others, which --force removes.
func (c *cli) identityFiles(keyPath string) (existing, others []string) {
	if c.identity == "" {
		for _, name := range jwk.IdentityFileNames() {
			if p := filepath.Join(c.home, name); p != keyPath {
				if _, err := os.Lstat(p); err == nil {
					others = append(others, p)
				}
			}
		}
	}
	if _, err := os.Lstat(keyPath); err == nil {
		existing = append(existing, keyPath)
	}
	return append(existing, others...), others
}

// publicKeysOnly reports whether the file at path holds keys (or
// certificates), none of them private, and returns them: a file made to be
// shared, which no private key is ever written over.
func publicKeysOnly(path string) ([]*jwk.Key, bool) {
	keys, err := jwk.ReadFile(path)
	if err != nil || len(keys) == 0 {
		return nil, false
	}
	for _, k := range keys {
		if k.IsPrivate() {
			return nil, false
		}
	}
	return keys, true
}

// publicOnly refuses, even with --force, to write a private key over the
// file -i names when that file holds public keys only: it is no identity
// to replace but, most likely, the public half mistaken for the key (ssh's
// id_ed25519.pub), a file made to be copied to other machines, where the
// private key would then go.
func publicOnly(path string) error {
	keys, public := publicKeysOnly(path)
	if !public {
		return nil
	}
	return fmt.Errorf("%s holds a public key%s, not an identity: gen writes a private key to the file -i names, and never over a public key, which is made to be shared; name the private key file, or a new one: keytool -i FILE gen",
		path, describeKeys(keys)) // the keys read, not the file read again
}

// sshPrivateKey refuses, even with --force, to write over the file -i
// names when it holds an OpenSSH private key (ssh-keygen's format, which
// keytool reads but does not write): ssh's own key, which ssh could no
// longer load, its .pub naming another key — lost with no copy (found by
// review: the advice for an existing identity led there). keytool can use
// it as it is.
func (c *cli) sshPrivateKey(path string) error {
	if path == "" {
		return nil
	}
	data, _, err := trustfile.Read(path)
	if err != nil {
		return nil
	}
	what := ""
	switch {
	case bytes.Contains(data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")):
		what = "an OpenSSH private key (ssh-keygen's format)"
	case sshPublicBeside(path):
		// ssh-keygen -m PEM, and OpenSSH before 7.8, write RSA and ECDSA
		// keys as OpenSSL's PEM: the .pub beside it says whose it is
		// (found by review).
		what = "ssh's private key (" + filepath.Base(path) + ".pub beside it is an OpenSSH public key)"
	default:
		return nil
	}
	return fmt.Errorf("%s is %s, which ssh uses: gen never writes over it, --force or not (ssh could no longer load it, and its .pub would name another key); keytool uses it as it is (%s), or make a new key in another file: %s",
		path, what, c.command("show"), strings.Replace(c.command("gen"), shellQuote(path), "NEW.json", 1))
}

// sshPublicBeside reports whether path.pub holds OpenSSH public key lines
// (ssh-keygen's: "ssh-ed25519 AAAA…", "ecdsa-sha2-nistp256 …"), as jwk
// tells and reads them.
func sshPublicBeside(path string) bool {
	data, _, err := trustfile.Read(path + ".pub")
	if err != nil {
		return false
	}
	if f, err := jwk.DetectFormat(data); err != nil || f != jwk.OpenSSH {
		return false
	}
	keys, err := jwk.Parse(data)
	return err == nil && len(keys) > 0
}

// refuseExisting explains that an identity exists, naming every file that
// --force would replace, and how to replace it with the key asked for
// (again: the flags given) — a new key, which every pin of the old one
// refuses. keepCmd, when names were given and the identity is one file,
// comes first: it saves them in the identity and keeps its key.
func (c *cli) refuseExisting(again []string, keepCmd string, paths ...string) error {
	descs := make([]string, len(paths))
	for i, p := range paths {
		descs[i] = p + describeKeyFile(p)
	}
	replace := "replace it with a new key (every pin of the old one refuses it): " + c.withForce(append([]string{"gen"}, again...))
	if keepCmd != "" && len(paths) == 1 {
		return fmt.Errorf("an identity already exists: %s; save the names in it, keeping its key: %s; or %s", descs[0], keepCmd, replace)
	}
	return fmt.Errorf("an identity already exists: %s; keep it, or %s", strings.Join(descs, ", "), replace)
}

// describeKeyFiles is each of files with describeKeyFile's description.
func describeKeyFiles(files []string) []string {
	out := make([]string, len(files))
	for i, p := range files {
		out[i] = p + describeKeyFile(p)
	}
	return out
}

// describeKeyFile says which key a file holds, " (ECDSA P-256, SHA256:…)",
// or nothing if it cannot be read — a FIFO or a device included, which
// the reader (trustfile.Read) opens without blocking and refuses. The
// file's mode is not checked: this only names a key that is about to be
// refused or replaced.
func describeKeyFile(path string) string {
	keys, err := jwk.ReadPublicKeys(path)
	if err != nil {
		return ""
	}
	return describeKeys(keys)
}

// describeKeys names the first of a file's keys, as describeKeyFile does:
// " (ALGORITHM, FINGERPRINT)", or "" for none.
func describeKeys(keys []*jwk.Key) string {
	if len(keys) == 0 {
		return ""
	}
	return " (" + keys[0].Algorithm() + ", " + keys[0].Fingerprint() + ")"
}

// keepKeyUsage refuses what gen --keep-key cannot do: it saves names
// (--host, required) in the identity and keeps its key, so the flags that
// make a key or choose how it is written have no place beside it.
func keepKeyUsage(flags *pflag.FlagSet, hosts []string) error {
	switch {
	case flags.Changed("type"):
		return usagef("--keep-key keeps the identity's key, and so its type: -t makes a new key (drop -t, or make a new identity with --force instead of --keep-key)")
	case flags.Changed("format"):
		return usagef("--keep-key keeps the identity's file, and so its format: -f writes a new one (drop -f)")
	case flags.Changed("force"):
		return usagef("--keep-key keeps the identity's key; --force replaces it with a new one, which every pin of the old key refuses: give one of them")
	case flags.Changed("next"):
		return usagef("--keep-key saves names in the identity; --next makes a new key beside it (gen --next --host names the next key): give one of them")
	case len(hosts) == 0:
		return usagef("--keep-key saves the names --host gives in the identity, replacing those saved before: give them with --host NAME,…")
	}
	return nil
}

// genKeepKey saves the names opts holds in the existing identity (the home's,
// or the file -i names), keeping its key: the private key file is read as
// every command reads it, and written again by gen's own writer
// (jwk.WritePrivateKeyFile: atomically, mode 0600) in the format it was in,
// with the same key and attributes but the names given in place of those
// saved before. The public half, which leaves the names out, stays as it
// is. hosts are the names as given, for the advice when there is no
// identity.
func (c *cli) genKeepKey(opts tlsbridge.CertOptions, hosts []string) error {
	// The lock of the identity's writers, from the read to the write: a
	// gen --force or a rotate of keytool's waits, or is waited for
	// (docs/design.md, "Concurrent writers").
	dir := c.home
	if c.identity != "" {
		dir = filepath.Dir(c.identity)
	}
	unlock, done, err := c.lockIdentity(dir)
	if err != nil {
		return err
	}
	defer unlock()
	path, data, fi, err := c.readKeepKey(hosts)
	if err != nil {
		return err
	}
	if err := publicOnly(c.identity); err != nil {
		return err
	}
	k, err := jwk.ParsePrivateKeyFile(path, data, fi)
	if err != nil {
		return err
	}
	f, err := jwk.DetectFormat(data)
	if err != nil {
		return err
	}
	if f != jwk.JWK && f != jwk.PEM {
		return fmt.Errorf("%s is a key in %s format, which keytool does not write: --keep-key rewrites JWK and PEM key files only", path, f)
	}
	if f == jwk.PEM {
		if why := notKeytoolPEM(data, c.notTheHomesOwnFile(path)); why != "" {
			return c.keepKeyForeign(path, why, hosts)
		}
	}
	// A link is written through, as ssh-keygen -c writes through one: the
	// rewrite goes to the file it names, atomically in that file's
	// directory, and the link stays a link. The home's target and its
	// directories passed the strict-modes rule as the key was read.
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("the identity %s: %w", path, err)
	}
	before, _ := k.Attrs.List(jwk.AttrNames)
	tlsbridge.SaveNames(k, opts) // replaces the list saved before
	out, err := k.MarshalPrivate(f)
	if err != nil {
		return err
	}
	if keepKeyBeforeWrite != nil {
		keepKeyBeforeWrite(path)
	}
	// Compare and swap: the file is put in place only if it still holds
	// what was read — asked as the new file is ready to be renamed. A
	// gen --force (a new key), a rotate or an edit between the read and
	// the write would otherwise be undone by the old key written back
	// (docs/cli.md, gen). keytool's writers wait for the lock held here,
	// and this one for theirs; the others (config management, an
	// editor, a keytool that went ahead unlocked) take no lock, and the
	// comparison sees every one whose write lands before the rename —
	// all but one landing in the instant between the check and the
	// rename itself.
	changed := &keyChangedError{path: path, again: c.command("gen", "--host", shellQuote(strings.Join(hosts, ",")), "--keep-key")}
	err = atomicfile.WriteIf(target, out, 0o600, func() error {
		if now, err := filepath.EvalSymlinks(path); err != nil || now != target {
			return changed // the link was changed, or the file removed
		}
		if now, _, err := trustfile.Read(target); err != nil || !bytes.Equal(now, data) {
			return changed
		}
		return nil
	})
	if err != nil {
		return err
	}
	atomicfile.RemoveStale(target) // copies of the key left by killed writes
	done()
	names, _ := k.Attrs.List(jwk.AttrNames)
	was := "none"
	if len(before) > 0 {
		was = strings.Join(before, ", ")
	}
	through := ""
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		through = " (a link: written to its target " + target + ")"
	}
	fmt.Fprintf(c.stdout, "Saved the certificate names in the identity %s%s, keeping its %s key\nFingerprint: %s (unchanged)\nCertificate names: %s (were: %s)\n",
		path, through, k.Algorithm(), k.Fingerprint(), strings.Join(names, ", "), was)
	fmt.Fprintf(c.stdout, "A running keytool proxy presents them from its next handshake, without a restart (unless it was started with --host, whose names it keeps, or presents a CA-issued cert.pem)\n")
	return nil
}

// readKeepKey reads the identity gen --keep-key rewrites, the home's or
// the file -i names, and returns its path, its bytes and their file's
// status; hosts are the names given, for the advice when there is none.
func (c *cli) readKeepKey(hosts []string) (path string, data []byte, fi fs.FileInfo, err error) {
	path = c.identity
	if path == "" {
		path, err = jwk.FindIdentity(c.home)
		var none *jwk.NoIdentityError
		if errors.As(err, &none) {
			return "", nil, nil, fmt.Errorf("no identity in %s to save the names in; make one, with them, by gen without --keep-key: %s",
				c.home, c.command("gen", "--host", shellQuote(strings.Join(hosts, ","))))
		}
		if err != nil {
			return "", nil, nil, err
		}
		// The home's key is a trust input: read as tlsbridge.ReadHomeKey
		// reads it (the file, a link's target, the directories up to
		// the home), and parsed from the bytes that read checked.
		data, fi, err = trustfile.Rule{Top: c.home}.ReadFile(path)
	} else {
		data, fi, err = trustfile.Read(path)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil, nil, fmt.Errorf("%s does not exist: there is no identity to save the names in; make one, with them, by gen without --keep-key: %s",
				path, c.command("gen", "--host", shellQuote(strings.Join(hosts, ","))))
		}
	}
	if err != nil {
		return "", nil, nil, fmt.Errorf("the identity %s: %w", path, err)
	}
	return path, data, fi, nil
}

// keepKeyBeforeWrite, when set (by a test), is called by gen --keep-key
// between its read of the identity path and its write: where another
// writer's replacement of the file lands in a race.
var keepKeyBeforeWrite func(path string)

// keyChangedError is gen --keep-key finding, as its rewrite was about to
// be put in place, that the identity file no longer holds what it read:
// another writer replaced or rewrote it meanwhile (a gen --force, a
// rotate, an edit) — or the link it was read through now names another
// file. Nothing is written: writing the key read would undo that change,
// a new key among them. again is the command to run once more.
type keyChangedError struct{ path, again string }

func (e *keyChangedError) Error() string {
	return fmt.Sprintf("the identity %s changed while gen ran (another gen --force, a rotate or an edit wrote it): the names were not saved, and what is there now was left as it is; run it again: %s", e.path, e.again)
}

// notTheHomesOwnFile reports whether path, the key gen --keep-key
// rewrites, is a file other software may read as it is: the file -i
// names, or the home's key through a link (the file it names lies
// elsewhere: nginx's key, linked in). Only the home's own key file, which
// gen made there, is keytool's alone.
func (c *cli) notTheHomesOwnFile(path string) bool {
	if c.identity != "" {
		return true
	}
	fi, err := os.Lstat(path)
	return err != nil || fi.Mode()&fs.ModeSymlink != 0
}

// notKeytoolPEM says why a PEM private key file is not one --keep-key may
// rewrite, or "" when it is: the rewrite is keytool's PEM — one PKCS #8
// PRIVATE KEY block, the names in its headers — so a file in another
// tool's form would change form and become unreadable to that tool, and
// a block beside the key would be dropped. A PKCS #8 block without
// headers is OpenSSL's own form (openssl genpkey, openssl pkcs8, nginx's
// key): OpenSSL refuses a PRIVATE KEY block with headers ("not proc
// type"), so names written into one that others' software reads (foreign)
// would lock that software out of its key (found by review, 2026-12-05);
// only the home's own key file takes them.
func notKeytoolPEM(data []byte, foreign bool) string {
	var types []string
	headers := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		types = append(types, b.Type)
		headers += len(b.Headers)
	}
	for _, t := range types {
		switch t {
		case "OPENSSH PRIVATE KEY":
			return "an OpenSSH private key (ssh-keygen's format), which keytool reads but does not write: rewritten as PEM, ssh would no longer load it"
		case "EC PRIVATE KEY", "RSA PRIVATE KEY":
			return "an " + t + " block (OpenSSL's traditional format), which keytool reads but does not write: rewritten as PKCS #8 with the names as PEM headers, OpenSSL would no longer read it"
		}
	}
	if len(types) != 1 {
		return "a PEM file of " + strings.Join(types, ", ") + ": the rewrite holds the private key alone, and the other blocks would be lost"
	}
	if foreign && headers == 0 {
		return "a PKCS #8 PRIVATE KEY without PEM headers, the form OpenSSL writes and reads (nginx's key, openssl genpkey's): with the names as PEM headers, OpenSSL, and the software that reads the file through it, would no longer read it"
	}
	return ""
}

// keepKeyForeign refuses gen --keep-key on a key file in a form keytool
// does not write, or that other software reads (why, notKeytoolPEM),
// leaving it as it is: the names can be given for a run instead, or saved
// in a copy of the key that is keytool's alone — the key file of a home
// of its own (cert --key-out writes it: PKCS #8, the identity's form with
// -f pem), whose names go in its headers.
func (c *cli) keepKeyForeign(path, why string, hosts []string) error {
	names := shellQuote(strings.Join(hosts, ","))
	return fmt.Errorf("%s is %s; it was left as it is. Give the names for each run instead (%s, or proxy --host), or save them in a copy of the key in a home of its own, used with -H DIR: mkdir -m 700 DIR && %s >/dev/null && keytool -H DIR gen --host %s --keep-key",
		path, why, c.command("cert", "--host", names), c.command("cert", "--key-out", "DIR/key.pem"), names)
}
