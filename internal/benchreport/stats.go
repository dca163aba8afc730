package benchreport

import (
	"slices"
)

// Spread summarizes repeated runs of one figure.
type Spread struct {
	Median, Min, Max float64
	// N is the number of runs.
	N int
}

// Summarize returns the median (the mean of the two middle values for an
// even count), the minimum and the maximum of xs; the zero Spread for none.
func Summarize(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	med := s[m]
	if len(s)%2 == 0 {
		med = (s[m-1] + s[m]) / 2
	}
	return Spread{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// Bench is every run of one benchmark.
type Bench struct {
	Pkg, Name string
	Runs      []Result
	// Units are the units of its figures, in the order first seen.
	Units []string
}

// Summary summarizes unit over the runs that report it.
func (b Bench) Summary(unit string) (Spread, bool) {
	var xs []float64
	for _, r := range b.Runs {
		if v, ok := r.Get(unit); ok {
			xs = append(xs, v)
		}
	}
	return Summarize(xs), len(xs) > 0
}

// Ratio summarizes num/den computed run by run, for two figures measured
// in the same run (a drain beside the emulator's ceiling).
func (b Bench) Ratio(num, den string) (Spread, bool) {
	var xs []float64
	for _, r := range b.Runs {
		n, ok1 := r.Get(num)
		d, ok2 := r.Get(den)
		if ok1 && ok2 && d != 0 {
			xs = append(xs, n/d)
		}
	}
	return Summarize(xs), len(xs) > 0
}

// GroupRuns gathers results by package and name, in the order first seen.
func GroupRuns(results []Result) []Bench {
	var out []Bench
	at := map[[2]string]int{}
	for _, r := range results {
		k := [2]string{r.Pkg, r.Name}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, Bench{Pkg: r.Pkg, Name: r.Name})
		}
		b := &out[i]
		b.Runs = append(b.Runs, r)
		for _, v := range r.Values {
			if !slices.Contains(b.Units, v.Unit) {
				b.Units = append(b.Units, v.Unit)
			}
		}
	}
	return out
}
