package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
)

// onlyOnce makes every flag of fs that holds one value refuse a second,
// different one. pflag keeps the last silently: `invite --remove a
// --remove b` removed b alone and said nothing of a, and `authorize
// --name alice --name bob` authorized bob. Flags that hold several
// (slices, arrays: --remove of authorize, trust-host and revoke, --host)
// and counts repeat as before. The same value twice is taken: nothing is
// lost (a wrapper script adding a flag the user gave too). given holds
// the flags parsed before the command's name, with their values.
func onlyOnce(fs *pflag.FlagSet, given map[string]string) {
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Value.(pflag.SliceValue); ok || f.Value.Type() == "count" {
			return
		}
		o := &onceValue{Value: f.Value, flag: f}
		o.first, o.set = given[f.Name]
		f.Value = o
	})
}

// onceValue is a flag's value that takes one value (onlyOnce).
type onceValue struct {
	pflag.Value
	flag  *pflag.Flag
	first string // the value given first
	set   bool
}

func (o *onceValue) Set(v string) error {
	if o.set && v != o.first {
		return &twiceError{flag: o.flag, first: o.first, then: v}
	}
	o.first, o.set = v, true
	return o.Value.Set(v)
}

// twiceError is a flag that takes one value given two.
type twiceError struct {
	flag        *pflag.Flag
	first, then string
}

func (e *twiceError) Error() string {
	return fmt.Sprintf("--%s given twice (%q, then %q): it takes one value", e.flag.Name, e.first, e.then)
}

// flagError is what a failed parse says: pflag's message, but for a flag
// given twice, whose own says it plainly (pflag's would call the second
// value an invalid argument).
func flagError(err error) error {
	if te := (*twiceError)(nil); errors.As(err, &te) {
		return te
	}
	return err
}
