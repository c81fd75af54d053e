package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/keytool/keytool/internal/termtext"
)

// Main runs the keytool command line with args (without the program name)
// and returns the process's exit status. cmd/keytool is a main that calls
// it; a build with more trust sources (the etcd module's) calls it too.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(args, stdin, stdout, stderr)
}

// A command is one verb of the command line. Each lives in its own file.
type command struct {
	name    string
	args    string                           // the synopsis after the name
	summary string                           // one line, for the command list
	help    string                           // what --help adds: behaviour, files, examples
	flags   func(set *pflag.FlagSet, c *cli) // registers the command's own flags
	run     func(c *cli, args []string) error
	uses    globalUse // the global flags the command reads (see globals); it is given no others
	hidden  bool      // not listed: the machinery of completion and man pages
	raw     bool      // run gets the arguments unparsed (keytool __complete WORDS…)
	// storeEdits: with --store, the command runs on the store's entries
	// and its changes are written back to it (store.go, inStore).
	storeEdits bool
}

// globalUse says which global flags a command reads. A command's --help,
// completion and man page show those only, and any other global flag given
// to it is bad usage: a flag that would be silently ignored is a mistake.
type globalUse uint8

const (
	globalHome     globalUse = 1 << iota // -H, --home (and $KEYTOOL_HOME, $HOME)
	globalIdentity                       // -i, --identity
	globalHostKeys                       // --strict-host-keys, --insecure
	globalPKI                            // --ca, --crl
	globalNone                           // none: the command needs no home (version, completion)
	globalStore                          // --store and the store backends' flags (store.go)
	globalStoreArg                       // the store backends' flags alone: the store is an argument (sync)
)

// globals returns the global flags cmd uses. A command that does not say
// gets them all, as every command did before uses existed;
// TestCommandsDeclareTheirGlobalFlags makes each one say.
func (cmd *command) globals() globalUse {
	if cmd.uses == 0 {
		return globalHome | globalIdentity | globalHostKeys | globalPKI
	}
	return cmd.uses &^ globalNone
}

// globalFlagUse tells which global flag belongs to which use.
var globalFlagUse = map[string]globalUse{
	"home": globalHome, "identity": globalIdentity,
	"strict-host-keys": globalHostKeys, "insecure": globalHostKeys,
	"ca": globalPKI, "crl": globalPKI,
}

// commandList lists the commands' constructors. Each run makes its
// commands afresh, so that no flag value outlives the run that parsed it
// (tests run many commands in one process).
var commandList = []func() *command{
	authorizeCommand, bundleCommand, caCommand, certCommand, connectCommand, dnsRecordCommand, genCommand, inviteCommand,
	joinCommand, listCommand, proxyCommand, pubCommand, revokeCommand, rotateCommand, showCommand, syncCommand, trustHostCommand,
	versionCommand, completionCommand, completeCommand, manCommand,
}

func newCommands() map[string]*command {
	cmds := make(map[string]*command, len(commandList))
	for _, mk := range commandList {
		c := mk()
		cmds[c.name] = c
	}
	return cmds
}

// commandSynonyms are the names other tools, and keytool's own prose, give
// keytool's commands: a user who types one is pointed to the command.
var commandSynonyms = map[string]string{"keygen": "gen", "enroll": "join", "trust": "trust-host", "unauthorize": "authorize",
	"status": "list", "ls": "list", "unrevoke": "revoke", "unpin": "trust-host", "pin": "trust-host", "authorise": "authorize"}

// nearCommand is the visible command a mistyped name most likely meant —
// one typo away (a letter missing, extra, wrong or two swapped), or a
// synonym — or "".
func nearCommand(name string, commands map[string]*command) string {
	if to, ok := commandSynonyms[name]; ok {
		return to
	}
	best := ""
	for cmd, c := range commands {
		if !c.hidden && oneTypoApart(name, cmd) && (best == "" || cmd < best) {
			best = cmd
		}
	}
	return best
}

// oneTypoApart reports whether a and b differ by one edit: a byte
// inserted, deleted or replaced, or two neighbours swapped.
func oneTypoApart(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	switch {
	case len(b)-len(a) > 1 || a == b:
		return false
	case len(a) < len(b): // one inserted
		return a[i:] == b[i+1:]
	case a[i+1:] == b[i+1:]: // one replaced
		return true
	}
	return i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:] // two swapped
}

// nearFlag is, for a flag fs does not know, the flag as typed and the
// visible long flag it most likely meant: one typo away (--nmae for
// --name), or a long flag given with one dash (-name, which pflag reads as
// the shorthands n, a, m, e). Both are "" when none is near.
func nearFlag(fs *pflag.FlagSet, err error) (bad, near string) {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return "", ""
	}
	if group := ne.GetSpecifiedShortnames(); group != "" {
		if f := fs.Lookup(group); f != nil && !f.Hidden && len(group) > 1 {
			return "-" + group, "--" + group
		}
		return "", ""
	}
	typed := ne.GetSpecifiedName()
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && oneTypoApart(typed, f.Name) && (near == "" || "--"+f.Name < near) {
			near = "--" + f.Name
		}
	})
	if near == "" {
		return "", ""
	}
	return "--" + typed, near
}

// fixedCommand is the command line args, as the user typed it, with the
// mistyped flag bad (alone, or as bad=VALUE) replaced by near: the command
// that was meant, ready to paste.
func fixedCommand(args []string, bad, near string) string {
	fixed := slices.Clone(args)
	for i, a := range fixed {
		if a == bad || strings.HasPrefix(a, bad+"=") {
			fixed[i] = near + strings.TrimPrefix(a, bad)
			break
		}
	}
	return typedCommand(fixed)
}

// typedCommand is the command line args, as the user typed it, quoted
// for a shell: a command to paste.
func typedCommand(args []string) string {
	words := []string{"keytool"}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

// cli holds the global options and the standard streams: everything a
// command may use, so that commands have no global state and tests can run
// them in-process as well as through a real process.
type cli struct {
	home         string
	identity     string
	identityHome string // the home whose identity is used, when not home (keyHome)
	// homeGiven is -H as the user gave it ("" for the default home): what
	// advice repeats, even while home is a copy a --store command runs on.
	homeGiven      string
	strictHostKeys string
	insecure       bool
	caFile         string
	crlFile        string
	purpose        string       // the connection's purpose (connect --purpose): which CAs of ca.d verify
	hostDNS        hostDNSFlags // connect, proxy --client, trust-host
	updateHostKeys string       // --update-host-keys of the same commands
	pinPurposes    []string     // trust-host --purpose: the advice's trust-host commands pin for these only
	skipped        int          // trust files a list skipped and reported (reportSkipped)
	store          storeFlags   // --store and its backends' flags
	// storeCopy: the command runs on a copy of the store (inStore), whose
	// notes say which entries it does not hold (storeunheld.go);
	// storeRemovals are the removals of such entries the command made,
	// written with its other changes, and storeRemoved what it says of
	// them: printed only once they are written, not with an error.
	storeCopy     bool
	storeRemovals []StoreChange
	storeRemoved  io.Writer

	stdin          io.Reader
	stdout, stderr io.Writer
	commands       map[string]*command // this run's, for completion and man pages
	argv           []string            // the arguments as given, for advice that repeats the whole command
}

// usageError makes run exit with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// exitError carries an exit status chosen by a command, after the command
// has printed its own messages.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// globalFlags registers the global flags on fs; those a command does not
// use (uses) are hidden, so that giving one can be refused by name.
func globalFlags(fs *pflag.FlagSet, c *cli, uses globalUse) {
	fs.StringVarP(&c.home, "home", "H", "", "keytool home `DIR` (default $KEYTOOL_HOME, else ~/.keytool)")
	fs.StringVarP(&c.identity, "identity", "i", "", "identity (private key) `FILE` (default: the key.{json,jwk,pem} in the home)")
	fs.StringVar(&c.strictHostKeys, "strict-host-keys", "ask", "`POLICY` for unknown hosts: yes (refuse), ask, accept-new, no (accept all, insecure)")
	fs.BoolVar(&c.insecure, "insecure", false, "accept any host that has no pin, without asking (same as --strict-host-keys no); a changed or revoked key is still refused")
	fs.StringVar(&c.caFile, "ca", "", "PKI mode: CA bundle `FILE` (default: HOME/ca.pem if it exists)")
	fs.StringVar(&c.crlFile, "crl", "", "PKI mode: CRL `FILE` (default: HOME/crl.pem if it exists)")
	for name, use := range globalFlagUse {
		fs.Lookup(name).Hidden = uses&use == 0
	}
	c.store.register(fs, uses&globalStore == 0, uses&(globalStore|globalStoreArg) == 0)
}

// unusedGlobal returns the usage error for a global flag given to a
// command that does not read it (hidden on fs), or nil.
func (c *cli) unusedGlobal(fs *pflag.FlagSet, cmd *command) error {
	use := func(name string) (globalUse, bool) {
		switch {
		case name == "store":
			return globalStore, true
		case c.store.names[name]:
			return globalStore | globalStoreArg, true
		}
		u, ok := globalFlagUse[name]
		return u, ok
	}
	var bad *pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) {
		if _, global := use(f.Name); global && f.Hidden && f.Changed && bad == nil {
			bad = f
		}
	})
	if bad == nil {
		return nil
	}
	badUse, _ := use(bad.Name)
	var users []string
	for _, other := range c.commands {
		if !other.hidden && other.globals()&badUse != 0 {
			users = append(users, other.name)
		}
	}
	sort.Strings(users)
	flag := "--" + bad.Name
	if badUse == globalStore && cmd.globals()&globalStoreArg != 0 {
		return usagef("%s does not apply to %s: its store is its %s argument", flag, cmd.name, strings.Fields(cmd.args)[0])
	}
	if bad.Shorthand != "" {
		flag = "-" + bad.Shorthand + "/" + flag
	}
	if len(users) == 0 {
		return usagef("%s does not apply to %s", flag, cmd.name)
	}
	return usagef("%s does not apply to %s (it is for %s)", flag, cmd.name, strings.Join(users, ", "))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	commands := newCommands()
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, commands: commands, argv: args}
	root := pflag.NewFlagSet("keytool", pflag.ContinueOnError)
	root.SetInterspersed(false)
	root.SetOutput(io.Discard)
	globalFlags(root, c, ^globalUse(0))
	help := root.BoolP("help", "h", false, "show this help")
	version := root.Bool("version", false, "print keytool's version, revision and Go version")
	onlyOnce(root, nil)
	if err := root.Parse(args); err != nil {
		fmt.Fprintf(stderr, "keytool: %v\n", flagError(err))
		if bad, near := nearFlag(root, err); near != "" {
			fmt.Fprintf(stderr, "Did you mean: %s?\n", fixedCommand(args, bad, near))
		}
		fmt.Fprintf(stderr, "Run 'keytool --help' for usage.\n")
		return 2
	}
	switch {
	case *version:
		printVersion(stdout)
		return 0
	case *help:
		printUsage(stdout, root, commands)
		return 0
	case root.NArg() == 0:
		printUsage(stderr, root, commands)
		return 2
	}
	name, rest := root.Arg(0), root.Args()[1:]
	if name == "help" { // "keytool help CMD" is "keytool CMD --help"
		switch {
		case len(rest) == 0:
			printUsage(stdout, root, commands)
			return 0
		case rest[0] == "help" || rest[0] == "--help" || rest[0] == "-h":
			// help is no command of the table, but it has a help of its own.
			fmt.Fprint(stdout, helpHelp)
			return 0
		}
		name, rest = rest[0], []string{"--help"}
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "keytool: unknown command %q\n", name)
		if near := nearCommand(name, commands); near != "" {
			fmt.Fprintf(stderr, "Did you mean: keytool %s?\n", near)
		}
		fmt.Fprintf(stderr, "Run 'keytool --help' for the list of commands.\n")
		return 2
	}
	if cmd.raw {
		return c.exitCode(name, cmd.run(c, rest))
	}
	// Global flags may come before or after the command name: remember the
	// ones given before, since registering them again resets their values.
	before := map[string]string{}
	root.Visit(func(f *pflag.Flag) { before[f.Name] = f.Value.String() })
	fs := pflag.NewFlagSet("keytool "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmdHelp := c.commandFlags(fs, cmd)
	for name, v := range before {
		_ = fs.Set(name, v) // the value parsed once already
	}
	onlyOnce(fs, before)
	if err := fs.Parse(rest); err != nil {
		fmt.Fprintf(stderr, "keytool %s: %v\n", name, flagError(err))
		if bad, near := nearFlag(fs, err); near != "" {
			fmt.Fprintf(stderr, "Did you mean: %s?\n", fixedCommand(args, bad, near))
		}
		fmt.Fprintf(stderr, "Run 'keytool %s --help' for usage.\n", name)
		return 2
	}
	if *cmdHelp {
		printCommandUsage(stdout, cmd, fs)
		return 0
	}
	err := c.unusedGlobal(fs, cmd)
	if err == nil {
		err = c.store.check()
	}
	if err == nil && cmd.globals()&globalHome != 0 {
		err = c.resolveHome()
	}
	if err == nil {
		err = c.runCommand(cmd, fs.Args())
	}
	return c.exitCode(name, err)
}

// runCommand runs cmd; an editing command given --store runs on the store
// (inStore).
func (c *cli) runCommand(cmd *command, args []string) error {
	if cmd.storeEdits && c.store.url != "" {
		return c.inStore(cmd.globals()&globalIdentity != 0, func() error { return cmd.run(c, args) })
	}
	return cmd.run(c, args)
}

// commandFlags registers on fs the flags of cmd, the global ones included
// (hidden when cmd does not use them), and returns its --help.
func (c *cli) commandFlags(fs *pflag.FlagSet, cmd *command) *bool {
	globalFlags(fs, c, cmd.globals())
	if cmd.flags != nil {
		cmd.flags(fs, c)
	}
	return fs.BoolP("help", "h", false, "show this help")
}

// exitCode prints what err says, if anything, and returns the exit status:
// 0, 1 for an error, 2 for bad usage, or the status a command chose.
func (c *cli) exitCode(name string, err error) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "keytool %s: %v\nRun 'keytool %s --help' for usage.\n", name, err, name)
		return 2
	default:
		fmt.Fprintf(c.stderr, "keytool %s: %s\n", name, c.advise(err))
		return 1
	}
}

// resolveHome settles the home: -H, else the default one.
func (c *cli) resolveHome() error {
	c.homeGiven = c.home
	if c.homeGiven != "" {
		return nil
	}
	h, err := defaultHome()
	c.home = h
	return err
}

// defaultHome is $KEYTOOL_HOME, else ~/.keytool. Without either there is
// no home: a relative ./.keytool would put keys wherever keytool happened
// to run.
func defaultHome() (string, error) {
	if h := os.Getenv("KEYTOOL_HOME"); h != "" {
		return h, nil
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".keytool"), nil
	}
	return "", usagef("no keytool home: set HOME or KEYTOOL_HOME, or pass -H DIR")
}

// homeFlag returns the -H option that reproduces the current home in a
// suggested command, or "" when the home is the default one.
func (c *cli) homeFlag() string {
	var s string
	if c.homeGiven != "" {
		s = " -H " + shellQuote(c.homeGiven)
	}
	return s + c.store.given()
}

// shellQuote quotes s for a POSIX shell when it needs quoting, so that the
// commands keytool suggests can be pasted as they are. Text that is not
// shown as it is (a name of an earlier version holding U+200B, a bidi
// control, a newline) is quoted as $'…' with those characters escaped
// (bash, zsh and ksh read \u200b there), so that the command shows
// what it holds.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	if q := termtext.Safe(s); q != s {
		return "$'" + strings.ReplaceAll(strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`), "'", `\'`) + "'"
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// usageIntro opens keytool --help and keytool(1).
const usageIntro = `keytool brings SSH's trust model to TLS: every daemon and client has its own
key; servers list the client keys they authorize, clients pin the host keys
they trust.
`

func printUsage(w io.Writer, root *pflag.FlagSet, commands map[string]*command) {
	fmt.Fprint(w, usageIntro+`
Usage:
  keytool [global flags] COMMAND [flags] [args]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n, cmd := range commands {
		if !cmd.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, listsHelp)
	fmt.Fprintf(w, "\nGlobal flags (each command takes those its --help lists):\n%s\nRun 'keytool COMMAND --help' for a command's flags.\n", root.FlagUsages())
}

// helpHelp is what keytool help help (or help --help) prints.
const helpHelp = `Usage: keytool help [COMMAND]

show the list of commands, or a command's help

Without COMMAND, prints the commands and the global flags, as keytool
--help does. With COMMAND, prints that command's help and flags, as
keytool COMMAND --help does.
`

func printCommandUsage(w io.Writer, cmd *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", strings.TrimSpace("keytool "+cmd.name+" "+cmd.args), cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.help))
	}
	fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
}

// printable shows a name, comment or attribute from a key file as
// termtext.Safe does, and an empty one as "-", for tables.
func printable(s string) string {
	if s == "" {
		return "-"
	}
	return termtext.Safe(s)
}
