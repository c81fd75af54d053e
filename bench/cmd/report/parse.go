package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// results maps a benchmark name (without "Benchmark", the "#NN" suffix Go
// gives repeated names, and the "-GOMAXPROCS" suffix) and a unit to the
// values, one per round, in the order they were measured.
type results map[string]map[string][]float64

var suffix = regexp.MustCompile(`(#\d+)?(-\d+)?$`)

func parse(path string) (results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := results{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue
		}
		name := suffix.ReplaceAllString(strings.TrimPrefix(fields[0], "Benchmark"), "")
		if r[name] == nil {
			r[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			r[name][fields[i+1]] = append(r[name][fields[i+1]], v)
		}
	}
	return r, sc.Err()
}

// vals returns the values of name in unit, or nil.
func (r results) vals(name, unit string) []float64 { return r[name][unit] }

// med returns the median of name's unit values, NaN if none.
func (r results) med(name, unit string) float64 { return median(r.vals(name, unit)) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio compares a and b round by round (the rounds are interleaved, so
// round r of a ran next to round r of b): the median of a_r/b_r, and its
// range.
type ratioT struct {
	med, lo, hi float64
	n           int
}

func (r results) ratio(a, b, unit string) ratioT {
	va, vb := r.vals(a, unit), r.vals(b, unit)
	n := min(len(va), len(vb))
	if n == 0 {
		return ratioT{med: math.NaN(), lo: math.NaN(), hi: math.NaN()}
	}
	rs := make([]float64, n)
	for i := range n {
		rs[i] = va[i] / vb[i]
	}
	return ratioT{med: median(rs), lo: slices.Min(rs), hi: slices.Max(rs), n: n}
}

// inv returns the ratio of b to a (a throughput ratio from time ratios).
func (t ratioT) inv() ratioT {
	return ratioT{med: 1 / t.med, lo: 1 / t.hi, hi: 1 / t.lo, n: t.n}
}

func (t ratioT) String() string {
	if math.IsNaN(t.med) {
		return "—"
	}
	if t.n <= 1 {
		return fmt.Sprintf("%.2f×", t.med)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", t.med, t.lo, t.hi)
}

// dur formats nanoseconds for a table.
func dur(ns float64) string {
	switch {
	case math.IsNaN(ns):
		return "—"
	case ns >= 1e9:
		return fmt.Sprintf("%.2f s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.1f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.0f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

// notes reads notes.txt (key TAB value); the last value of a key wins.
func notes(path string) map[string]string {
	m := map[string]string{}
	data, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "\t"); ok {
			m[k] = v
		}
	}
	return m
}
