package sim

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// Plot geometry.
const (
	plotW, plotH           = 640, 240
	marginL, marginR       = 56, 56
	marginT, marginB       = 28, 40
	maxPoints              = 320
	colorDepth, colorTasks = "#1f77b4", "#d62728"
)

// WriteSVG plots queue depth (visible + in flight, left axis) and tasks
// started and not stopped (right axis) over the run, one point per minute
// reduced to the maximum of each of at most maxPoints buckets.
func WriteSVG(w io.Writer, res Result) error {
	ser := res.series
	end := 0.0
	if len(ser) > 0 {
		end = ser[len(ser)-1].t
	}
	end = math.Max(end, res.HorizonHours*hour)
	depths, tasks := bucket(ser, end)
	maxDepth, maxTasks := 1, 1
	for i := range depths {
		maxDepth, maxTasks = max(maxDepth, depths[i]), max(maxTasks, tasks[i])
	}
	yDepth, yTasks := niceCeil(maxDepth), niceCeil(maxTasks)
	iw, ih := float64(plotW-marginL-marginR), float64(plotH-marginT-marginB)
	x := func(i int) float64 { return marginL + iw*float64(i)/float64(max(len(depths)-1, 1)) }
	y := func(v, top int) float64 { return marginT + ih*(1-float64(v)/float64(top)) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13">%s</text>`+"\n", marginL, esc(fmt.Sprintf("%s · %s · %d uploads", res.Arch, res.Scenario, res.Uploads)))
	// Axes and grid.
	fmt.Fprintf(&b, `<g stroke="#888" fill="none"><rect x="%d" y="%d" width="%.0f" height="%.0f"/></g>`+"\n", marginL, marginT, iw, ih)
	for i := 0; i <= 4; i++ {
		yy := marginT + ih*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`+"\n", marginL, yy, marginL+iw, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="%s">%g</text>`+"\n", marginL-4, yy+4, colorDepth, float64(yDepth*(4-i))/4)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" fill="%s">%g</text>`+"\n", marginL+iw+4, yy+4, colorTasks, float64(yTasks*(4-i))/4)
	}
	hours := end / hour
	step := 24
	for _, st := range []int{1, 2, 3, 6, 12} {
		if hours/float64(st) <= 10 {
			step = st
			break
		}
	}
	for h := 0; float64(h) <= hours; h += step {
		xx := marginL + iw*float64(h)/hours
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%d</text>`+"\n", xx, marginT+ih+14, h)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">hours from the start</text>`+"\n", marginL+iw/2, plotH-6)
	fmt.Fprintf(&b, `<text transform="translate(14 %.0f) rotate(-90)" text-anchor="middle" fill="%s">queue depth (visible + in flight)</text>`+"\n", marginT+ih/2, colorDepth)
	fmt.Fprintf(&b, `<text transform="translate(%d %.0f) rotate(90)" text-anchor="middle" fill="%s">tasks</text>`+"\n", plotW-10, marginT+ih/2, colorTasks)
	line := func(v []int, top int, color string) {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.2" points="`, color)
		for i := range v {
			if i > 0 && i < len(v)-1 && v[i-1] == v[i] && v[i] == v[i+1] {
				continue // inside a flat run: its ends draw it
			}
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", x(i), y(v[i], top))
		}
		b.WriteString(`"/>` + "\n")
	}
	line(depths, yDepth, colorDepth)
	line(tasks, yTasks, colorTasks)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// bucket reduces the per-minute series to at most maxPoints maxima.
func bucket(ser []sample, end float64) (depths, tasks []int) {
	n := min(maxPoints, max(len(ser), 2))
	depths, tasks = make([]int, n), make([]int, n)
	for _, s := range ser {
		i := min(int(s.t/end*float64(n-1)+0.5), n-1)
		depths[i] = max(depths[i], s.depth)
		tasks[i] = max(tasks[i], s.running)
	}
	return depths, tasks
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v int) int {
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
	}
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
