package dane

import (
	"errors"
	"reflect"
	"testing"
)

// Without a search or domain line (or with one naming only "."), glibc
// and Go search the domain of the machine's host name.
func TestSystemSearchHostnameDomain(t *testing.T) {
	t.Setenv("LOCALDOMAIN", "")
	t.Setenv("RES_OPTIONS", "")
	for _, c := range []struct {
		host string
		err  error
		want []string
	}{
		{"vm.corp.example", nil, []string{"corp.example."}},
		{"vm.corp.example.", nil, []string{"corp.example."}},
		{"vm", nil, nil},
		{"vm.", nil, nil},
		{"", errors.New("no host name"), nil},
	} {
		hostname = func() (string, error) { return c.host, c.err }
		got := searchOf(ResolvConfig{Ndots: 1})
		if !reflect.DeepEqual(got.Domains, c.want) {
			t.Errorf("host name %q: search %q, want %q", c.host, got.Domains, c.want)
		}
	}
}
