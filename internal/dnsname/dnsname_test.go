package dnsname

import "testing"

func TestASCIIOnly(t *testing.T) {
	for _, c := range []struct {
		in, lower string
	}{
		{"key.example", "key.example"},
		{"KEY.Example", "key.example"},
		{"\u212aEY.EXAMPLE", "\u212aey.example"}, // the Kelvin sign stays
		{"HOST.\u017fub", "host.\u017fub"},       // so does "ſ"
		{"", ""},
	} {
		if got := Lower(c.in); got != c.lower {
			t.Errorf("Lower(%q) = %q, want %q", c.in, got, c.lower)
		}
		if !Equal(c.in, c.lower) {
			t.Errorf("Equal(%q, %q) = false", c.in, c.lower)
		}
	}
	for _, pair := range [][2]string{{"\u212aey.example", "key.example"}, {"ho\u017ft.example", "host.example"}, {"a", "ab"}} {
		if Equal(pair[0], pair[1]) {
			t.Errorf("Equal(%q, %q) = true", pair[0], pair[1])
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = Lower("already.lower") }); n != 0 {
		t.Errorf("Lower of a lower-case name allocates %v times", n)
	}
}

// Valid takes host names as they are written, and refuses the slips that
// would put a port, a URL or a blank into a certificate or a DNS record.
func TestValid(t *testing.T) {
	long := ""
	for len(long) < 63 {
		long += "a"
	}
	for _, name := range []string{"localhost", "db.example.com", "DB.Example.COM.", "_8443._tcp.db.example", "xn--bcher-kva.example", "a-b.c_d.e", long + ".example"} {
		if !Valid(name) {
			t.Errorf("Valid(%q) = false", name)
		}
	}
	for _, name := range []string{"", ".", "db..example", ".db.example", "db.example..", "db.example:8443", "https://db.example", "db example", "db.example/", "*.example", "bücher.example", "db\x00.example", long + "a.example"} {
		if Valid(name) {
			t.Errorf("Valid(%q) = true", name)
		}
	}
}
