package sim

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/edp-pipelines/edp/internal/settings"
)

// Dur formats seconds for a table: 42s, 3m05s, 2h10m, 1d04h.
func Dur(s float64) string {
	switch {
	case s < 60:
		return fmt.Sprintf("%.0fs", s)
	case s < hour:
		return fmt.Sprintf("%dm%02ds", int(s)/60, int(s)%60)
	case s < day:
		return fmt.Sprintf("%dh%02dm", int(s)/3600, int(s)%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", int(s)/86400, int(s)%86400/3600)
}

func money(v float64) string {
	if v != 0 && v < 0.01 {
		return "<0.01"
	}
	return fmt.Sprintf("%.2f", v)
}

var columns = []string{"arch", "start p50", "p90", "p99", "done p50", "p90", "p99", "peak tasks", "mean tasks", "task-hours",
	"Fargate $", "IPv4 $", "Lambda $", "alarms $", "Scheduler $", "SQS $", "total $/month"}

func row(r Result) []string {
	return []string{string(r.Arch), Dur(r.Start.P50), Dur(r.Start.P90), Dur(r.Start.P99), Dur(r.Finish.P50), Dur(r.Finish.P90), Dur(r.Finish.P99),
		fmt.Sprint(r.PeakTasks), fmt.Sprintf("%.2f", r.MeanTasks), fmt.Sprintf("%.1f", r.TaskSeconds/hour),
		money(r.Cost.Fargate), money(r.Cost.PublicIP), money(r.Cost.Lambda), money(r.Cost.Alarms), money(r.Cost.Scheduler), money(r.Cost.SQS), money(r.Cost.Total)}
}

// WriteTable prints one scenario's results as an aligned text table,
// followed by each architecture's warnings.
func WriteTable(w io.Writer, sc Scenario, results []Result) error {
	if len(results) == 0 {
		return nil
	}
	fmt.Fprintf(w, "scenario %s: %s (%d uploads; costs: this pattern for 30 days, list prices of %s)\n", sc.Name, sc.Description, results[0].Uploads, PriceDate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(columns, "\t")+"\t")
	for _, r := range results {
		fmt.Fprintln(tw, strings.Join(row(r), "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		for _, warn := range r.Warnings {
			fmt.Fprintf(w, "  %s: %s\n", r.Arch, warn)
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

// PlotName is the file name of a run's plot.
func PlotName(r Result) string { return fmt.Sprintf("sim-%s-%s.svg", r.Scenario, r.Arch) }

// Recommendation is the pick for one scenario.
type Recommendation struct {
	Scenario          string
	Pick              Arch
	Why               string
	Fastest, Cheapest Arch
}

// Recommend picks, per scenario, among the architectures that lose no work
// and finish 90 % of the uploads within the max wait plus five minutes
// (what the alarm stacks promise, with room for a task's start), the
// cheapest — or a faster one that costs at most tieShare more plus tieCents
// (a near tie goes to speed). When none qualifies, the fastest.
func Recommend(s settings.Settings, results []Result) Recommendation {
	var rec Recommendation
	if len(results) == 0 {
		return rec
	}
	rec.Scenario = results[0].Scenario
	limit := float64(s.MaxWaitMinutes)*minute + 5*minute
	fast, cheap := results[0], results[0]
	var ok []Result
	for _, r := range results {
		if r.Finish.P90 < fast.Finish.P90 {
			fast = r
		}
		if r.Cost.Total < cheap.Cost.Total {
			cheap = r
		}
		if r.Lost == 0 && r.Waiting == 0 && r.Finish.P90 <= limit {
			ok = append(ok, r)
		}
	}
	rec.Fastest, rec.Cheapest = fast.Arch, cheap.Arch
	if len(ok) == 0 {
		rec.Pick = fast.Arch
		rec.Why = fmt.Sprintf("none finishes 90%% within %s; fastest: done p90 %s at $%s/month", Dur(limit), Dur(fast.Finish.P90), money(fast.Cost.Total))
		return rec
	}
	least := ok[0].Cost.Total
	for _, r := range ok {
		least = math.Min(least, r.Cost.Total)
	}
	var pick *Result
	for i, r := range ok {
		if r.Cost.Total <= least*(1+tieShare)+tieDollars && (pick == nil || r.Finish.P90 < pick.Finish.P90) {
			pick = &ok[i]
		}
	}
	rec.Pick = pick.Arch
	rec.Why = fmt.Sprintf("done p90 %s (limit %s) at $%s/month", Dur(pick.Finish.P90), Dur(limit), money(pick.Cost.Total))
	return rec
}

// A near tie in cost: within 10 % plus 10 cents of the cheapest.
const (
	tieShare   = 0.10
	tieDollars = 0.10
)

// Markdown writes the generated part of docs/choosing.md: per scenario its
// table, warnings and plots (under imgDir, relative to the page), then the
// recommendations and the parameter table.
func Markdown(w io.Writer, s settings.Settings, scenarios []Scenario, results [][]Result, imgDir string) error {
	var b strings.Builder
	for i, sc := range scenarios {
		rs := results[i]
		if len(rs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "### %s\n\n%s: %d uploads.\n\n", sc.Name, sc.Description, rs[0].Uploads)
		b.WriteString("| " + strings.Join(columns, " | ") + " |\n|" + strings.Repeat("---|", len(columns)) + "\n")
		for _, r := range rs {
			b.WriteString("| " + strings.Join(row(r), " | ") + " |\n")
		}
		b.WriteString("\n")
		for _, r := range rs {
			for _, warn := range r.Warnings {
				fmt.Fprintf(&b, "- **%s**: %s\n", r.Arch, warn)
			}
		}
		b.WriteString("\n")
		for _, r := range rs {
			fmt.Fprintf(&b, "![%s, %s: queue depth and tasks](%s/%s)\n", r.Scenario, r.Arch, imgDir, PlotName(r))
		}
		b.WriteString("\n")
	}
	b.WriteString("### Recommendation by pattern\n\n")
	fmt.Fprintf(&b, "Among the architectures that lose no work and finish 90 %% of the uploads within the max wait plus five minutes (%s with edp:maxWaitMinutes=%d): the cheapest, or a faster one within 10 %% + $0.10 of it; when none qualifies, the fastest.\n\n",
		Dur(float64(s.MaxWaitMinutes)*minute+5*minute), s.MaxWaitMinutes)
	b.WriteString("| pattern | pick | why | fastest | cheapest |\n|---|---|---|---|---|\n")
	for i, sc := range scenarios {
		if len(results[i]) == 0 {
			continue
		}
		rec := Recommend(s, results[i])
		fmt.Fprintf(&b, "| %s | **%s** | %s | %s | %s |\n", sc.Name, rec.Pick, rec.Why, rec.Fastest, rec.Cheapest)
	}
	b.WriteString("\n### Parameters\n\n")
	ParamsMarkdown(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

// ParamsMarkdown writes the parameter table: key, default, range, what, source.
func ParamsMarkdown(w io.Writer) {
	fmt.Fprintf(w, "| parameter | default | range | what | source |\n|---|---|---|---|---|\n")
	for _, in := range paramTable {
		fmt.Fprintf(w, "| `%s` | %s %s | %s–%s | %s | %s |\n", in.Key, num(in.Default), in.Unit, num(in.Min), num(in.Max), in.What, in.Source)
	}
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
