package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/keytool/keytool/internal/atomicfile"
)

// The man pages in man/ at the top of the repository are made from what
// --help shows — each command's name, synopsis, summary, help text and flag
// set — by the hidden "keytool __man DIR". TestManPages makes them again
// and compares, so that --help and the pages cannot disagree.
// They are made with go generate ./cmd/keytool (the directive is in
// cmd/keytool/main.go, since only a main package can run).

func manCommand() *command {
	return &command{
		name:    "__man",
		uses:    globalNone,
		args:    "DIR",
		summary: "write keytool(1) and a page per command, in roff, to DIR",
		hidden:  true,
		run: func(c *cli, args []string) error {
			if len(args) != 1 {
				return usagef("__man takes the DIR to write the pages to")
			}
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			for name, page := range manPages(c.commands) {
				// Replaced, never written through: DIR may be one others
				// can write (/tmp), where a page's name may be a link.
				if err := atomicfile.Write(filepath.Join(args[0], name), []byte(page), 0o644); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// manPages returns the pages by file name: keytool.1 and keytool-NAME.1.
func manPages(commands map[string]*command) map[string]string {
	var names []string
	for name, cmd := range commands {
		if !cmd.hidden {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	pages := map[string]string{"keytool.1": mainManPage(commands, names)}
	for _, name := range names {
		pages["keytool-"+name+".1"] = commandManPage(commands[name])
	}
	return pages
}

func manHeader(b *strings.Builder, title string) {
	b.WriteString(`.\" Made by "keytool __man" (go generate ./cmd/keytool) from --help: do not edit.` + "\n")
	fmt.Fprintf(b, ".TH %s 1 \"\" \"keytool\" \"keytool manual\"\n", roffText(strings.ToUpper(title)))
	b.WriteString(".nh\n.ad l\n") // flags and file names are not to be hyphenated, nor stretched
}

func mainManPage(commands map[string]*command, names []string) string {
	var b strings.Builder
	manHeader(&b, "keytool")
	b.WriteString(".SH NAME\nkeytool \\- SSH's trust model for TLS: keys, authorized clients, trusted hosts\n")
	b.WriteString(".SH SYNOPSIS\n.B keytool\n[global flags] COMMAND [flags] [args]\n")
	b.WriteString(".SH DESCRIPTION\n")
	manText(&b, usageIntro)
	b.WriteString(".SH COMMANDS\n")
	for _, name := range names {
		fmt.Fprintf(&b, ".TP\n.BR keytool\\-%s (1)\n%s\n", roffText(name), roffText(commands[name].summary))
	}
	b.WriteString(".SH GLOBAL OPTIONS\nEach command takes those its page lists.\n")
	root := pflag.NewFlagSet("keytool", pflag.ContinueOnError)
	globalFlags(root, &cli{}, ^globalUse(0))
	root.BoolP("help", "h", false, "show this help")
	root.Bool("version", false, "print keytool's version, revision and Go version")
	manFlags(&b, root)
	b.WriteString(`.SH ENVIRONMENT
.TP
.B KEYTOOL_HOME
the home when \fB\-H\fR is not given
.TP
.B HOME
without \fB\-H\fR and \fBKEYTOOL_HOME\fR, the home is \fI$HOME/.keytool\fR; with none of the three, commands that use a home refuse to run
.SH EXIT STATUS
0 on success, 1 on an error, 2 on bad usage (an unknown command or flag, a missing argument, a flag the command does not take).
.SH SEE ALSO
`)
	for i, name := range names {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, ".BR keytool\\-%s (1)", roffText(name))
	}
	b.WriteString("\n.PP\ndocs/cli.md in keytool's source\n")
	return b.String()
}

func commandManPage(cmd *command) string {
	var b strings.Builder
	manHeader(&b, "keytool-"+cmd.name)
	fmt.Fprintf(&b, ".SH NAME\nkeytool\\-%s \\- %s\n", roffText(cmd.name), roffText(cmd.summary))
	b.WriteString(".SH SYNOPSIS\n")
	for i, synopsis := range strings.Split(cmd.args, "  ·  ") {
		if i > 0 {
			b.WriteString(".br\n")
		}
		fmt.Fprintf(&b, ".B keytool %s\n", roffText(cmd.name))
		if synopsis != "" {
			b.WriteString(roffLine(synopsis) + "\n")
		}
	}
	b.WriteString(".SH DESCRIPTION\n")
	if cmd.help != "" {
		manText(&b, cmd.help)
	} else {
		manText(&b, cmd.summary)
	}
	fs := pflag.NewFlagSet("keytool "+cmd.name, pflag.ContinueOnError)
	(&cli{}).commandFlags(fs, cmd)
	b.WriteString(".SH OPTIONS\n")
	manFlags(&b, fs)
	b.WriteString(".SH SEE ALSO\n.BR keytool (1)\n")
	return b.String()
}

// manFlags lists the flags fs shows, as --help does.
func manFlags(b *strings.Builder, fs *pflag.FlagSet) {
	fs.SortFlags = true
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		b.WriteString(".TP\n")
		if f.Shorthand != "" {
			fmt.Fprintf(b, "\\fB\\-%s\\fR, ", roffText(f.Shorthand))
		}
		fmt.Fprintf(b, "\\fB\\-\\-%s\\fR", roffText(f.Name))
		varname, usage := pflag.UnquoteUsage(f)
		if varname != "" && f.NoOptDefVal == "" {
			fmt.Fprintf(b, " \\fI%s\\fR", roffText(varname))
		}
		b.WriteString("\n" + roffLine(usage))
		switch f.DefValue {
		case "", "false", "0", "[]", "0s":
		default:
			fmt.Fprintf(b, " (default: %s)", roffText(f.DefValue))
		}
		b.WriteString("\n")
	})
}

// manText renders a help text: paragraphs at blank lines, indented lines
// as they are (tables of options, examples).
func manText(b *strings.Builder, text string) {
	indented := false
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		isIndented := strings.HasPrefix(line, " ")
		if isIndented != indented && line != "" {
			if isIndented {
				b.WriteString(".RS 2\n.nf\n")
			} else {
				b.WriteString(".fi\n.RE\n")
			}
			indented = isIndented
		}
		switch {
		case line == "" && !indented:
			b.WriteString(".PP\n")
		case indented:
			b.WriteString(roffLine(strings.TrimPrefix(line, "  ")) + "\n")
		default:
			b.WriteString(roffLine(line) + "\n")
		}
	}
	if indented {
		b.WriteString(".fi\n.RE\n")
	}
}

// roffLine is roffText for a whole line: one that would start with a
// control character (. or ') is protected.
func roffLine(s string) string {
	s = roffText(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffReplacer escapes what roff would interpret, and spells the few
// non-ASCII characters of the help texts as roff's named glyphs, so that
// the pages read the same with or without preconv.
var roffReplacer = strings.NewReplacer(
	`\`, `\e`, "-", `\-`, "…", `\[u2026]`, "—", `\[u2014]`, "·", `\[u00B7]`, "→", `\[u2192]`, "↔", `\[u2194]`, "ë", `\[u00EB]`,
)

func roffText(s string) string { return roffReplacer.Replace(s) }
