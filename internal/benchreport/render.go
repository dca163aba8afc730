package benchreport

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Report is what docs/benchmarks.md shows.
type Report struct {
	// Date is when the measurement started.
	Date    time.Time
	Machine Machine
	// Go is the toolchain's version, e.g. go1.26.8.
	Go string
	// Count is the number of runs of each go test benchmark.
	Count int
	// Note is said under the header (a shared machine, say).
	Note string
	// Took is the wall time of the whole measurement.
	Took time.Duration
	// LoadAfter is the load average when it ended ("" when unknown).
	LoadAfter string
	Sections  []Section
	Ratios    []Ratio
	// NotMeasured says what was skipped and why.
	NotMeasured []string
}

// Section is one table: a group of benchmarks or measurements.
type Section struct {
	Title string
	// Intro is a paragraph above the table.
	Intro string
	// Command runs the section alone ("" when none applies).
	Command string
	Rows    []Row
}

// Row is one benchmark or measurement.
type Row struct {
	Name string
	// Note says what it measures.
	Note    string
	Figures []Figure
}

// Figure is one unit of a row over its runs.
type Figure struct {
	Unit string
	S    Spread
}

// Ratio relates two figures.
type Ratio struct {
	Name string
	S    Spread
	// Note says how it is computed and what it means.
	Note string
}

// Render writes r as markdown.
func Render(w io.Writer, r Report) error {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`internal/benchreport`) on %s; regenerate it rather than editing it.\n\n",
		r.Date.UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString("| | |\n|---|---|\n")
	m := r.Machine
	cpu := fmt.Sprintf("%s, %d CPUs", m.CPU, m.CPUs)
	if m.Memory != "" {
		cpu += ", " + m.Memory + " of memory"
	}
	fmt.Fprintf(&b, "| machine | %s |\n", cpu)
	fmt.Fprintf(&b, "| OS | %s |\n", m.OS)
	fmt.Fprintf(&b, "| Go | %s |\n", r.Go)
	fmt.Fprintf(&b, "| runs | median of %d runs per benchmark (`BENCH_COUNT`), spread min–max |\n", r.Count)
	if m.Load != "" {
		fmt.Fprintf(&b, "| load average (1, 5, 15 min) at the start | %s |\n", m.Load)
	}
	if r.LoadAfter != "" {
		fmt.Fprintf(&b, "| load average at the end | %s |\n", r.LoadAfter)
	}
	if r.Took > 0 {
		fmt.Fprintf(&b, "| `make bench` took | %s |\n", r.Took.Round(time.Second))
	}
	b.WriteString("\n")
	if r.Note != "" {
		b.WriteString(r.Note + "\n\n")
	}
	for _, s := range r.Sections {
		renderSection(&b, s)
	}
	if len(r.Ratios) > 0 {
		b.WriteString("## Ratios\n\n| ratio | median | min–max | runs | how |\n|---|---|---|---|---|\n")
		for _, q := range r.Ratios {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %s |\n", q.Name, formatNumber(q.S.Median)+"×", spreadText("×", q.S), q.S.N, q.Note)
		}
		b.WriteString("\n")
	}
	if len(r.NotMeasured) > 0 {
		b.WriteString("## Not measured in this run\n\n")
		for _, n := range r.NotMeasured {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, strings.TrimRight(b.String(), "\n")+"\n")
	return err
}

// RenderSection writes one section as markdown, as Render does.
func RenderSection(w io.Writer, s Section) error {
	var b strings.Builder
	renderSection(&b, s)
	_, err := io.WriteString(w, strings.TrimRight(b.String(), "\n")+"\n")
	return err
}

func renderSection(b *strings.Builder, s Section) {
	fmt.Fprintf(b, "## %s\n\n", s.Title)
	if s.Intro != "" {
		b.WriteString(s.Intro + "\n\n")
	}
	if s.Command != "" {
		fmt.Fprintf(b, "```\n%s\n```\n\n", s.Command)
	}
	b.WriteString("| benchmark | figure | median | min–max | runs |\n|---|---|---|---|---|\n")
	for _, row := range s.Rows {
		for i, f := range row.Figures {
			name := ""
			if i == 0 {
				name = "`" + row.Name + "`"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %d |\n", name, unitLabel(f.Unit), formatValue(f.Unit, f.S.Median), spreadText(f.Unit, f.S), f.S.N)
		}
	}
	b.WriteString("\n")
	// Sub-benchmarks share their parent's note: say it once, of the
	// parent.
	said := map[string]bool{}
	for _, row := range s.Rows {
		top, _, sub := strings.Cut(row.Name, "/")
		if row.Note == "" || said[top] {
			continue
		}
		said[top] = true
		name := row.Name
		if sub {
			name = top + "/…"
		}
		fmt.Fprintf(b, "- `%s`: %s\n", name, row.Note)
	}
	b.WriteString("\n")
}

// unitLabel names a unit in the table: ns/op is shown as a time.
func unitLabel(unit string) string {
	switch unit {
	case "ns/op":
		return "time/op"
	case "ns/row":
		return "time/row"
	}
	return unit
}

// spreadText is "min–max", or "—" for a single run.
func spreadText(unit string, s Spread) string {
	if s.N < 2 {
		return "—"
	}
	if unit == "×" {
		return formatNumber(s.Min) + "–" + formatNumber(s.Max) + "×"
	}
	return formatValue(unit, s.Min) + "–" + formatValue(unit, s.Max)
}

// formatValue shows a figure: times in ns (ns/op, ns/row) with a unit,
// other figures (seconds of unit xxx-s included) as numbers.
func formatValue(unit string, v float64) string {
	if unit == "ns/op" || unit == "ns/row" {
		return formatDuration(v)
	}
	return formatNumber(v)
}

// formatDuration shows nanoseconds in ns, µs, ms or s with three
// significant digits.
func formatDuration(ns float64) string {
	switch a := math.Abs(ns); {
	case a < 1e3:
		return formatNumber(ns) + " ns"
	case a < 1e6:
		return formatNumber(ns/1e3) + " µs"
	case a < 1e9:
		return formatNumber(ns/1e6) + " ms"
	}
	return formatNumber(ns/1e9) + " s"
}

// formatNumber shows an integer as one, other numbers with three
// significant digits (every digit of an integer part that has more).
func formatNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
