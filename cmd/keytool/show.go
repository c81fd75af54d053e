package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/keytool/keytool/jwk"
	"github.com/spf13/pflag"
)

// showCommand makes the show command, with flag variables of its own.
func showCommand() *command {
	var asJSON bool
	return &command{
		name:    "show",
		args:    "[--json] [FILE…]",
		summary: "describe keys: type, fingerprint, key ID, thumbprint, attributes",
		help: `Reads each FILE (default: the identity; - for standard input) in any format
keytool knows, and describes every key in it. --json prints a JSON array of
objects with file, index, type, private, fingerprint, key_id, thumbprint and
attributes. A file that cannot be read is reported and the others still
shown; the exit status is then 1.`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			set.BoolVar(&asJSON, "json", false, "print JSON")
		},
		run: func(c *cli, args []string) error {
			if len(args) == 0 {
				p, err := c.identityPath()
				if err != nil {
					return err
				}
				args = []string{p}
			}
			return c.show(args, asJSON)
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
	KeyID       string         `json:"key_id"`
	Thumbprint  string         `json:"thumbprint"`
	Attributes  jwk.Attributes `json:"attributes"`
}

func describe(file string, i int, k *jwk.Key) keyInfo {
	attrs := k.Attrs
	if attrs == nil {
		attrs = jwk.Attributes{}
	}
	return keyInfo{
		File: file, Index: i, Type: k.Algorithm(), Private: k.IsPrivate(),
		Fingerprint: k.Fingerprint(), KeyID: k.KeyID(), Thumbprint: k.Thumbprint(),
		Attributes: attrs,
	}
}

func (c *cli) show(files []string, asJSON bool) error {
	infos := []keyInfo{}
	failed := false
	for _, file := range files {
		keys, err := c.readKeys(file)
		if err != nil {
			fmt.Fprintf(c.stderr, "keytool show: %s\n", c.advise(err))
			failed = true
			continue
		}
		for i, k := range keys {
			infos = append(infos, describe(file, i, k))
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
			kind := "public"
			if in.Private {
				kind = "private"
			}
			fmt.Fprintf(c.stdout, "%s", in.File)
			if in.Index > 0 || countIn(infos, in.File) > 1 {
				fmt.Fprintf(c.stdout, " [%d]", in.Index)
			}
			fmt.Fprintf(c.stdout, ": %s %s key\n", in.Type, kind)
			fmt.Fprintf(c.stdout, "  fingerprint  %s\n  key ID       %s\n  thumbprint   %s\n", in.Fingerprint, in.KeyID, in.Thumbprint)
			for _, name := range slices.Sorted(maps.Keys(in.Attributes)) {
				fmt.Fprintf(c.stdout, "  %-12s %s\n", printable(name), attrText(in.Attributes[name]))
			}
		}
	}
	if failed {
		return &exitError{1}
	}
	return nil
}

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
