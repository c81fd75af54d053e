package cli

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/enroll"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// Shell completion works as cobra's does: the script a shell loads knows
// nothing of keytool's commands; it calls the hidden "keytool __complete
// WORDS…" with the words of the line (the last one is being completed), and
// offers what that prints. The candidates come from the very flag sets the
// commands register for parsing and --help, so that completion cannot
// disagree with them. A last line ":files" or ":dirs" asks the shell to
// complete file or directory names instead.

// completeCommandName is the hidden command the scripts call.
const completeCommandName = "__complete"

func completionCommand() *command {
	return &command{
		name:    "completion",
		uses:    globalNone,
		args:    "bash|zsh|fish",
		summary: "print the shell completion script for bash, zsh or fish",
		help: `Prints a script that makes the shell complete keytool's commands, flags and
arguments: file names, and the values the home holds (authorized key names
for authorize --remove, --accept-rotation and --no-accept-rotation, pinned
addresses for trust-host --remove and connect, revoked fingerprints for
revoke --remove, pending invitations for invite --remove), read from the
home the line names (-H, else $KEYTOOL_HOME, else ~/.keytool).

  bash  source <(keytool completion bash)   in ~/.bashrc, or save it as
        ~/.local/share/bash-completion/completions/keytool
  zsh   keytool completion zsh > "${fpath[1]}/_keytool"   then restart zsh
        (or source <(keytool completion zsh) after compinit in ~/.zshrc)
  fish  keytool completion fish > ~/.config/fish/completions/keytool.fish`,
		run: func(c *cli, args []string) error {
			if len(args) != 1 {
				return usagef("which shell? keytool completion bash, zsh or fish")
			}
			script, ok := completionScripts[args[0]]
			if !ok {
				return usagef("no completion for %q: keytool completion bash, zsh or fish", args[0])
			}
			fmt.Fprint(c.stdout, script)
			return nil
		},
	}
}

func completeCommand() *command {
	return &command{
		name:    completeCommandName,
		uses:    globalNone,
		args:    "WORDS…",
		summary: "print the completions of the last word of a keytool command line",
		hidden:  true,
		raw:     true,
		run: func(c *cli, args []string) error {
			c.complete(args)
			return nil
		},
	}
}

// flagValues complete the values of flags, by "COMMAND --FLAG" or, for
// a global flag, "--FLAG". The values a home holds are read through its
// stores, quietly: a broken file is the command's to report, not the
// completion's.
var flagValues = map[string]func(c *cli) []string{
	"--strict-host-keys":               func(*cli) []string { return []string{"yes", "ask", "accept-new", "no"} },
	"gen --type":                       keyTypes,
	"proxy --type":                     keyTypes,
	"connect --update-host-keys":       yesAskNo,
	"proxy --update-host-keys":         yesAskNo,
	"trust-host --update-host-keys":    yesAskNo,
	"connect --verify-host-key-dns":    yesAskNo,
	"proxy --verify-host-key-dns":      yesAskNo,
	"trust-host --verify-host-key-dns": yesAskNo,
	"proxy --log-format":               func(*cli) []string { return []string{"text", "json"} },
	"proxy --log-level":                func(*cli) []string { return []string{"debug", "info", "warn", "error"} },
	"gen --format":                     func(*cli) []string { return []string{"jwk", "pem"} },
	"pub --format":                     func(*cli) []string { return []string{"jwk", "pem"} },
	"authorize --remove":               (*cli).authorizedNames,
	"authorize --accept-rotation":      (*cli).authorizedNames,
	"authorize --no-accept-rotation":   (*cli).authorizedNames,
	"trust-host --remove":              (*cli).pinnedAddresses,
	"revoke --remove":                  (*cli).revokedFingerprints,
	"invite --remove":                  (*cli).pendingInvites,
	"invite --revoke":                  (*cli).pendingInvites, // --remove's old name
}

func yesAskNo(*cli) []string { return []string{"yes", "ask", "no"} }

func keyTypes(*cli) []string {
	var out []string
	for _, t := range jwk.Types() {
		out = append(out, string(t))
	}
	return out
}

// argValues complete a command's arguments (n: how many came before);
// a command not listed takes no file, or nothing to complete.
var argValues = map[string]func(c *cli, n int) ([]string, string){
	"authorize":  filesArg,
	"revoke":     filesArg,
	"show":       filesArg,
	"pub":        filesArg,
	"bundle":     firstArg("authorized", "trusted"),
	"ca":         firstArg("add", "list", "remove"),
	"completion": firstArg("bash", "zsh", "fish"),
	"connect": func(c *cli, n int) ([]string, string) {
		if n > 0 {
			return nil, ""
		}
		return c.pinnedAddresses(), ""
	},
}

func filesArg(*cli, int) ([]string, string) { return nil, ":files" }

func firstArg(values ...string) func(*cli, int) ([]string, string) {
	return func(_ *cli, n int) ([]string, string) {
		if n > 0 {
			return nil, ""
		}
		return values, ""
	}
}

// completionLine is what the words before the one being completed say.
type completionLine struct {
	cmd     *command       // nil before the command name
	help    bool           // "keytool help": a command name follows
	fs      *pflag.FlagSet // the root's flags before the command, its own after
	pending *pflag.Flag    // the flag whose value the current word is
	args    int            // the command's arguments so far
}

// complete prints the candidates for the last of words, one a line.
func (c *cli) complete(words []string) {
	if len(words) == 0 {
		words = []string{""}
	}
	cur := words[len(words)-1]
	commands := c.commands
	l := c.readLine(words[:len(words)-1], commands)
	cands, directive := c.candidates(l, cur, commands)
	for _, s := range cands {
		// A value the home holds (a key file's "name", which anything
		// may be) that a terminal would act on is not offered: a shell
		// lists candidates as they are. Nor is one of several lines,
		// which would be several candidates.
		if strings.HasPrefix(s, cur) && termtext.Safe(s) == s {
			fmt.Fprintln(c.stdout, s)
		}
	}
	if directive != "" {
		fmt.Fprintln(c.stdout, directive)
	}
}

// readLine parses the complete words of a line as run would, without
// running anything and ignoring what does not parse.
func (c *cli) readLine(words []string, commands map[string]*command) completionLine {
	root := pflag.NewFlagSet("keytool", pflag.ContinueOnError)
	globalFlags(root, c, ^globalUse(0))
	root.BoolP("help", "h", false, "")
	root.Bool("version", false, "")
	l := completionLine{fs: root}
	dashes := false
	for _, w := range words {
		switch {
		case l.pending != nil:
			_ = l.fs.Set(l.pending.Name, w) // Set, not Value.Set: Changed carries it past the command name
			l.pending = nil
		case w == "--" && !dashes:
			dashes = true
		case strings.HasPrefix(w, "-") && len(w) > 1 && !dashes:
			l.pending = setFlag(l.fs, w)
		case l.cmd == nil && !l.help && w == "help":
			l.help = true
		case l.cmd == nil && !l.help:
			cmd := commands[w]
			if cmd == nil || cmd.hidden {
				return completionLine{fs: pflag.NewFlagSet("", pflag.ContinueOnError), cmd: &command{}}
			}
			l.cmd, l.fs = cmd, c.commandFlagSet(root, cmd)
		default:
			l.args++
		}
	}
	return l
}

// commandFlagSet is cmd's flag set as run makes it, with the global flags
// given before the command name carried over.
func (c *cli) commandFlagSet(root *pflag.FlagSet, cmd *command) *pflag.FlagSet {
	before := map[string]string{}
	root.Visit(func(f *pflag.Flag) { before[f.Name] = f.Value.String() })
	fs := pflag.NewFlagSet("keytool "+cmd.name, pflag.ContinueOnError)
	c.commandFlags(fs, cmd)
	for name, v := range before {
		_ = fs.Set(name, v)
	}
	return fs
}

// setFlag sets the flag word names (--name=value, --name, -x, -xVALUE)
// and returns it if its value is the next word.
func setFlag(fs *pflag.FlagSet, w string) *pflag.Flag {
	var f *pflag.Flag
	value, inline := "", false
	if name, ok := strings.CutPrefix(w, "--"); ok {
		name, value, inline = strings.Cut(name, "=")
		f = fs.Lookup(name)
	} else {
		f = fs.ShorthandLookup(w[1:2])
		value, inline = w[2:], len(w) > 2
	}
	switch {
	case f == nil:
		return nil
	case inline:
		_ = fs.Set(f.Name, value)
		return nil
	case f.NoOptDefVal != "": // a bool
		_ = fs.Set(f.Name, f.NoOptDefVal)
		return nil
	}
	return f
}

// candidates returns what may complete cur, and a directive for the shell.
func (c *cli) candidates(l completionLine, cur string, commands map[string]*command) ([]string, string) {
	switch {
	case l.pending != nil:
		return c.valuesOf(l, l.pending)
	case strings.HasPrefix(cur, "--") && strings.Contains(cur, "="):
		name, _, _ := strings.Cut(cur[2:], "=")
		f := l.fs.Lookup(name)
		if f == nil || f.Hidden || f.NoOptDefVal != "" {
			return nil, ""
		}
		values, directive := c.valuesOf(l, f)
		for i, v := range values {
			values[i] = "--" + name + "=" + v
		}
		return values, directive
	case strings.HasPrefix(cur, "-"):
		return flagNames(l.fs), ""
	case l.cmd == nil:
		var names []string
		for name, cmd := range commands {
			if !cmd.hidden {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		return names, ""
	case l.help:
		return nil, ""
	}
	if complete := argValues[l.cmd.name]; complete != nil {
		return complete(c, l.args)
	}
	return nil, ""
}

// flagNames lists the flags fs shows, long then short.
func flagNames(fs *pflag.FlagSet) []string {
	var long, short []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		long = append(long, "--"+f.Name)
		if f.Shorthand != "" {
			short = append(short, "-"+f.Shorthand)
		}
	})
	return append(long, short...)
}

// valuesOf completes the value of flag f: the values listed for it, else
// file or directory names for a FILE or DIR, else nothing.
func (c *cli) valuesOf(l completionLine, f *pflag.Flag) ([]string, string) {
	name := ""
	if l.cmd != nil {
		name = l.cmd.name
	}
	if values := flagValues[name+" --"+f.Name]; values != nil {
		return values(c), ""
	}
	if values := flagValues["--"+f.Name]; values != nil {
		return values(c), ""
	}
	switch varname, _ := pflag.UnquoteUsage(f); varname {
	case "FILE":
		return nil, ":files"
	case "DIR":
		return nil, ":dirs"
	}
	return nil, ""
}

// completionHome is the home the line names, or "" when there is none.
func (c *cli) completionHome() string {
	if c.home != "" {
		if rest, ok := strings.CutPrefix(c.home, "~/"); ok { // the shell has not expanded it yet
			if h, err := os.UserHomeDir(); err == nil {
				return h + "/" + rest
			}
		}
		return c.home
	}
	h, err := defaultHome()
	if err != nil {
		return ""
	}
	return h
}

func (c *cli) authorizedNames() []string {
	home := c.completionHome()
	if home == "" {
		return nil
	}
	var names []string
	for _, e := range authkeys.Load(authkeys.HomeOptions(home)).Entries() {
		if e.Name != "" {
			names = append(names, e.Name)
		}
	}
	return sortedUnique(names)
}

// pinnedAddresses are the addresses pinned in the home, patterns left out.
func (c *cli) pinnedAddresses() []string {
	home := c.completionHome()
	if home == "" {
		return nil
	}
	var addrs []string
	for _, e := range knownhosts.Load(knownhosts.HomeOptions(home)).Entries() {
		for _, a := range e.Addresses {
			if !strings.ContainsAny(a, "*?") {
				addrs = append(addrs, a)
			}
		}
	}
	return sortedUnique(addrs)
}

func (c *cli) revokedFingerprints() []string {
	home := c.completionHome()
	if home == "" {
		return nil
	}
	var fps []string
	for _, r := range authkeys.Load(authkeys.HomeOptions(home)).Revoked() {
		fps = append(fps, r.Fingerprint)
	}
	return sortedUnique(fps)
}

func (c *cli) pendingInvites() []string {
	home := c.completionHome()
	if home == "" {
		return nil
	}
	invs, _ := enroll.ListInvites(enroll.InvitesDir(home))
	var names []string
	now := time.Now()
	for _, inv := range invs {
		if inv.Status(now) == "pending" {
			names = append(names, inv.Name)
		}
	}
	return sortedUnique(names)
}

func sortedUnique(s []string) []string {
	sort.Strings(s)
	return slices.Compact(s)
}

// completionScripts are what keytool completion prints. Each asks
// "keytool __complete" (the keytool the line names) for the candidates.
var completionScripts = map[string]string{
	"bash": `# bash completion for keytool: source <(keytool completion bash)
_keytool() {
	# bash splits words at : and = (COMP_WORDBREAKS); keytool's values hold
	# them (SHA256:…, --flag=value): rejoin the pieces the line does not
	# separate with blanks.
	local -a words=()
	local i w line=${COMP_LINE-} space
	line=${line:0:${COMP_POINT:-${#line}}}
	for ((i = 0; i <= COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		space=${line%%[![:space:]]*}
		line=${line#"$space"}
		if ((i > 0)) && [[ -n ${COMP_LINE-} && -z $space && -n $w ]] &&
			[[ $w == [:=]* || ${words[${#words[@]}-1]} == *[:=] ]]; then
			words[${#words[@]}-1]+=$w
		else
			words+=("$w")
		fi
		line=${line#"$w"}
	done
	local cur=${words[${#words[@]}-1]} out
	out=$("${words[0]}" __complete "${words[@]:1}" 2>/dev/null) || return
	[[ -n $out ]] || return
	local -a cands
	mapfile -t cands <<<"$out"
	local word=${COMP_WORDS[COMP_CWORD]}
	[[ $word == [:=] ]] && word=
	case ${cands[${#cands[@]}-1]} in
	:files)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$word")
		return ;;
	:dirs)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$word")
		return ;;
	esac
	# bash replaces only what follows the last : or = of the word.
	if [[ $cur == *[:=]* ]]; then
		local pre=${cur%"${cur##*[:=]}"}
		cands=("${cands[@]#"$pre"}")
	fi
	# bash inserts a candidate as it is: quoted, a value holding what the
	# shell acts on ($(…), a blank) is read back as that value.
	mapfile -t COMPREPLY < <(printf '%q\n' "${cands[@]}")
}
complete -F _keytool keytool
`,
	"zsh": `#compdef keytool
# zsh completion for keytool: keytool completion zsh > "${fpath[1]}/_keytool"
_keytool() {
	local -a cands
	cands=("${(@f)$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	cands=(${cands:#})
	case ${cands[-1]} in
	:files) compset -P '--*='; _files; return ;;
	:dirs) compset -P '--*='; _files -/; return ;;
	esac
	(( ${#cands} )) && compadd -- "${cands[@]}"
}
if [[ ${funcstack[1]} == _keytool ]]; then
	_keytool "$@"
else
	compdef _keytool keytool
fi
`,
	"fish": `# fish completion for keytool: keytool completion fish > ~/.config/fish/completions/keytool.fish
function __keytool_complete
	set -l words (commandline -opc) (commandline -ct)
	set -l out (command $words[1] __complete $words[2..-1] 2>/dev/null)
	set -l token (commandline -ct)
	set -l flag (string match -r -- '^--[^=]*=' $token)
	set -l cur (string replace -r -- '^--[^=]*=' '' $token)
	switch "$out[-1]"
		case :files
			printf "$flag%s\n" (__fish_complete_path $cur)
		case :dirs
			printf "$flag%s\n" (__fish_complete_directories $cur)
		case '*'
			printf '%s\n' $out
	end
end
complete -c keytool -f -a '(__keytool_complete)'
`,
}
