package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
)

// printList prints the listing of a --list option: the items as a JSON
// array with --json (a stable interface for scripts); else, when there are
// no rows, the hint on standard error; else an aligned table.
func (c *cli) printList(asJSON bool, items any, header []string, rows [][]string, hint string) error {
	if asJSON {
		out, err := json.MarshalIndent(items, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s\n", out)
		return nil
	}
	if len(rows) == 0 {
		fmt.Fprintln(c.stderr, hint)
		return nil
	}
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	return w.Flush()
}

// listOrRemove is the dispatch authorize, revoke and trust-host share:
// --list [--json] lists, --remove removes, and neither goes with anything
// else (others: arguments or flags of the command's main mode). It reports
// whether one of them ran, and its error.
func listOrRemove(list, asJSON, removing, others bool, doList func(asJSON bool) error, doRemove func() error) (bool, error) {
	switch {
	case list && removing:
		return true, usagef("--list and --remove cannot be combined")
	case asJSON && !list:
		return true, usagef("--json goes with --list")
	case (list || removing) && others:
		return true, usagef("--list and --remove take no other argument or flag")
	case list:
		return true, doList(asJSON)
	case removing:
		return true, doRemove()
	}
	return false, nil
}

// reportSkipped prints, one line each, the trust files a store skipped,
// each with the command that fixes it when there is one.
func reportSkipped[P error](c *cli, cmd string, problems []P) {
	for _, p := range problems {
		fmt.Fprintf(c.stderr, "keytool %s: skipped %v\n", cmd, p)
		if fix := c.fileFix(p); fix != "" {
			fmt.Fprintf(c.stderr, "  fix with: %s\n", fix)
		}
	}
}
