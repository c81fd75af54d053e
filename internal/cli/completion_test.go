package cli

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestCompletionNamesRealFlags: every value list of the completion names a
// flag that exists (an old name may be hidden), so that renaming a flag cannot leave its
// completion silently behind (testdata/script/completion.txt runs the
// completions themselves in bash, zsh and fish).
func TestCompletionNamesRealFlags(t *testing.T) {
	commands := newCommands()
	for key := range flagValues {
		name, flag, ok := strings.Cut(key, " --")
		if !ok { // a global flag: "--NAME"
			if _, global := globalFlagUse[strings.TrimPrefix(key, "--")]; !global {
				t.Errorf("flagValues[%q]: no such global flag", key)
			}
			continue
		}
		cmd := commands[name]
		if cmd == nil {
			t.Errorf("flagValues[%q]: no command %s", key, name)
			continue
		}
		fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
		(&cli{}).commandFlags(fs, cmd)
		if f := fs.Lookup(flag); f == nil || f.NoOptDefVal != "" {
			t.Errorf("flagValues[%q]: %s has no flag --%s that takes a value", key, name, flag)
		}
	}
	for name := range argValues {
		if cmd := commands[name]; cmd == nil || cmd.hidden {
			t.Errorf("argValues[%q]: no such command", name)
		}
	}
}

// TestCommandsDeclareTheirGlobalFlags: every command says which global
// flags it uses (one that does not is given them all, and its --help lists
// flags it ignores); each reads the home but the two that need none and
// sync, whose home is --to.
func TestCommandsDeclareTheirGlobalFlags(t *testing.T) {
	for name, cmd := range newCommands() {
		switch {
		case cmd.hidden:
		case name == "version" || name == "completion":
			if cmd.uses != globalNone {
				t.Errorf("%s: uses is %b, want globalNone: it needs no home", name, cmd.uses)
			}
		case name == "sync":
			if cmd.uses&globalHome != 0 {
				t.Errorf("sync: uses is %b, with globalHome: its home is --to", cmd.uses)
			}
		case cmd.uses == 0:
			t.Errorf("%s does not declare the global flags it uses: add uses: globalHome|… to its constructor", name)
		case cmd.uses&globalHome == 0:
			t.Errorf("%s: uses is %b, without globalHome", name, cmd.uses)
		}
	}
}
