package schedexpr

import (
	"strings"
	"testing"
	"time"
)

// TestDocumentedExamples evaluates the examples of "Schedule types on
// EventBridge Scheduler" (the cron-based examples table, the rate-based and
// one-time CLI examples) and checks their first fire times against what the
// page says each one does. The expected times were worked out by hand
// against a calendar (2026-05-08 is a Friday), not computed with this
// package. Each case follows its fires from one instant, so a sequence shows
// the pattern: the weekend skipped, a range that wraps past midnight.
func TestDocumentedExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr, tz string
		start    string // StartDate, rate only
		after    string
		want     []string // the next fires, each strictly after the one before
	}{
		// "10:00 every day" and "12:15 every day".
		{expr: "cron(0 10 * * ? *)", after: "2026-05-08T19:50:00Z",
			want: []string{"2026-05-09T10:00:00Z", "2026-05-10T10:00:00Z", "2026-05-11T10:00:00Z"}},
		{expr: "cron(15 12 * * ? *)", after: "2026-05-08T19:50:00Z",
			want: []string{"2026-05-09T12:15:00Z", "2026-05-10T12:15:00Z", "2026-05-11T12:15:00Z"}},
		// "18:00 Monday to Friday": Friday evening is past, the weekend skipped.
		{expr: "cron(0 18 ? * MON-FRI *)", after: "2026-05-08T19:50:00Z",
			want: []string{"2026-05-11T18:00:00Z", "2026-05-12T18:00:00Z", "2026-05-13T18:00:00Z"}},
		// "08:00 on the first day of the month".
		{expr: "cron(0 8 1 * ? *)", after: "2026-05-08T19:50:00Z",
			want: []string{"2026-06-01T08:00:00Z", "2026-07-01T08:00:00Z", "2026-08-01T08:00:00Z"}},
		// "every 15 minutes".
		{expr: "cron(0/15 * * * ? *)", after: "2026-05-08T19:50:00Z",
			want: []string{"2026-05-08T20:00:00Z", "2026-05-08T20:15:00Z", "2026-05-08T20:30:00Z"}},
		// "every 10 minutes Monday to Friday": Friday's last, then Monday's first.
		{expr: "cron(0/10 * ? * MON-FRI *)", after: "2026-05-08T23:45:00Z",
			want: []string{"2026-05-08T23:50:00Z", "2026-05-11T00:00:00Z", "2026-05-11T00:10:00Z"}},
		// "every 5 minutes Monday to Friday between 8:00 and 17:55".
		{expr: "cron(0/5 8-17 ? * MON-FRI *)", after: "2026-05-08T17:50:00Z",
			want: []string{"2026-05-08T17:55:00Z", "2026-05-11T08:00:00Z", "2026-05-11T08:05:00Z"}},
		// "every 30 minutes Monday to Friday, from the evening to 2 am the
		// next day": the day-of-week applies to each fire's own date, so
		// Friday's evening fires, Saturday's early hours do not, and Monday's
		// early hours do (the page notes Monday 00:00 to 02:00). Hour 2 with
		// minutes 0/30 includes 02:30.
		{expr: "cron(0/30 20-2 ? * MON-FRI *)", after: "2026-05-08T23:10:00Z",
			want: []string{"2026-05-08T23:30:00Z", "2026-05-11T00:00:00Z", "2026-05-11T00:30:00Z"}},
		{expr: "cron(0/30 20-2 ? * MON-FRI *)", after: "2026-05-11T01:45:00Z",
			want: []string{"2026-05-11T02:00:00Z", "2026-05-11T02:30:00Z", "2026-05-11T20:00:00Z"}},
		// The rate-based CLI example, "every five minutes", from its start date.
		{expr: "rate(5 minutes)", start: "2026-05-08T19:52:00Z", after: "2026-05-08T19:50:00Z",
			want: []string{"2026-05-08T19:52:00Z", "2026-05-08T19:57:00Z", "2026-05-08T20:02:00Z"}},
		// A one-time schedule fires once, at its wall time in its zone
		// (Los Angeles is UTC-8 after the clocks went back on 2022-11-06).
		{expr: "at(2022-11-20T13:00:00)", tz: "America/Los_Angeles", after: "2022-11-01T00:00:00Z",
			want: []string{"2022-11-20T21:00:00Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.expr+" after "+tc.after, func(t *testing.T) {
			t.Parallel()
			s, err := ParseIn(tc.expr, tc.tz)
			if err != nil {
				t.Fatalf("ParseIn(%q, %q): %v", tc.expr, tc.tz, err)
			}
			if tc.start != "" {
				s = s.WithStart(mustTime(t, tc.start))
			}
			var got []string
			after := mustTime(t, tc.after)
			for range 3 {
				next, ok := s.Next(after)
				if !ok {
					break
				}
				got = append(got, next.UTC().Format(time.RFC3339))
				after = next
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("fires = %v, want %v", got, tc.want)
			}
		})
	}
}
