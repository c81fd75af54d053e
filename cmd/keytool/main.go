// Command keytool manages the keys of the SSH-style trust model for TLS:
// an identity per daemon and per client, the client keys a server
// authorizes, and the host keys a client trusts. See docs/cli.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/keytool/keytool/internal/termtext"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// A command is one verb of the command line. Each lives in its own file.
type command struct {
	name    string
	args    string                           // the synopsis after the name
	summary string                           // one line, for the command list
	help    string                           // what --help adds: behaviour, files, examples
	flags   func(set *pflag.FlagSet, c *cli) // registers the command's own flags
	run     func(c *cli, args []string) error
}

// commandList lists the commands' constructors. Each run makes its
// commands afresh, so that no flag value outlives the run that parsed it
// (tests run many commands in one process).
var commandList = []func() *command{
	authorizeCommand, bundleCommand, certCommand, connectCommand, genCommand, inviteCommand,
	joinCommand, listCommand, proxyCommand, pubCommand, revokeCommand, showCommand, trustHostCommand,
}

func newCommands() map[string]*command {
	cmds := make(map[string]*command, len(commandList))
	for _, mk := range commandList {
		c := mk()
		cmds[c.name] = c
	}
	return cmds
}

// cli holds the global options and the standard streams: everything a
// command may use, so that commands have no global state and tests can run
// them in-process as well as through a real process.
type cli struct {
	home           string
	identity       string
	homeSet        bool
	strictHostKeys string
	insecure       bool
	caFile         string
	crlFile        string

	stdin          io.Reader
	stdout, stderr io.Writer
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

func globalFlags(fs *pflag.FlagSet, c *cli) {
	fs.StringVarP(&c.home, "home", "H", "", "keytool home `DIR` (default $KEYTOOL_HOME, else ~/.keytool)")
	fs.StringVarP(&c.identity, "identity", "i", "", "identity (private key) `FILE` (default: the key.{json,jwk,pem} in the home)")
	fs.StringVar(&c.strictHostKeys, "strict-host-keys", "ask", "`POLICY` for unknown hosts: yes (refuse), ask, accept-new, no (accept all, insecure)")
	fs.BoolVar(&c.insecure, "insecure", false, "accept any host that has no pin, without asking (same as --strict-host-keys no); a changed or revoked key is still refused")
	fs.StringVar(&c.caFile, "ca", "", "PKI mode: CA bundle `FILE` (default: HOME/ca.pem if it exists)")
	fs.StringVar(&c.crlFile, "crl", "", "PKI mode: CRL `FILE` (default: HOME/crl.pem if it exists)")
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	commands := newCommands()
	root := pflag.NewFlagSet("keytool", pflag.ContinueOnError)
	root.SetInterspersed(false)
	root.SetOutput(io.Discard)
	globalFlags(root, c)
	help := root.BoolP("help", "h", false, "show this help")
	if err := root.Parse(args); err != nil {
		fmt.Fprintf(stderr, "keytool: %v\nRun 'keytool --help' for usage.\n", err)
		return 2
	}
	if *help || root.NArg() == 0 {
		if root.NArg() == 0 && !*help {
			printUsage(stderr, root, commands)
			return 2
		}
		printUsage(stdout, root, commands)
		return 0
	}
	name, rest := root.Arg(0), root.Args()[1:]
	if name == "help" { // "keytool help CMD" is "keytool CMD --help"
		if len(rest) == 0 {
			printUsage(stdout, root, commands)
			return 0
		}
		name, rest = rest[0], []string{"--help"}
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "keytool: unknown command %q\nRun 'keytool --help' for the list of commands.\n", name)
		return 2
	}
	// Global flags may come before or after the command name: remember the
	// ones given before, since registering them again resets their values.
	before := map[string]string{}
	root.Visit(func(f *pflag.Flag) { before[f.Name] = f.Value.String() })
	fs := pflag.NewFlagSet("keytool "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	globalFlags(fs, c)
	if cmd.flags != nil {
		cmd.flags(fs, c)
	}
	cmdHelp := fs.BoolP("help", "h", false, "show this help")
	for name, v := range before {
		_ = fs.Set(name, v) // the value parsed once already
	}
	if err := fs.Parse(rest); err != nil {
		fmt.Fprintf(stderr, "keytool %s: %v\nRun 'keytool %s --help' for usage.\n", name, err, name)
		return 2
	}
	if *cmdHelp {
		printCommandUsage(stdout, cmd, fs)
		return 0
	}
	c.homeSet = c.home != ""
	if c.home == "" {
		c.home = defaultHome()
	}
	err := cmd.run(c, fs.Args())
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "keytool %s: %v\nRun 'keytool %s --help' for usage.\n", name, err, name)
		return 2
	default:
		fmt.Fprintf(stderr, "keytool %s: %s\n", name, c.advise(err))
		return 1
	}
}

// defaultHome is $KEYTOOL_HOME, else ~/.keytool.
func defaultHome() string {
	if h := os.Getenv("KEYTOOL_HOME"); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".keytool")
	}
	return ".keytool"
}

// homeFlag returns the -H option that reproduces the current home in a
// suggested command, or "" when the home is the default one.
func (c *cli) homeFlag() string {
	if !c.homeSet {
		return ""
	}
	return " -H " + shellQuote(c.home)
}

// shellQuote quotes s for a POSIX shell when it needs quoting, so that the
// commands keytool suggests can be pasted as they are.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printUsage(w io.Writer, root *pflag.FlagSet, commands map[string]*command) {
	fmt.Fprint(w, `keytool brings SSH's trust model to TLS: every daemon and client has its own
key; servers list the client keys they authorize, clients pin the host keys
they trust.

Usage:
  keytool [global flags] COMMAND [flags] [args]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, listsHelp)
	fmt.Fprintf(w, "\nGlobal flags:\n%s\nRun 'keytool COMMAND --help' for a command's flags.\n", root.FlagUsages())
}

func printCommandUsage(w io.Writer, cmd *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: keytool %s %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
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
