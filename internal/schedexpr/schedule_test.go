package schedexpr

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Expected times were worked out by hand against a calendar and the zone
// rules (EU clocks change at 01:00 UTC on the last Sunday of March and
// October: 2026-03-29 and 2026-10-25; US clocks at 02:00 local on
// 2026-03-08 and 2026-11-01), not computed with this package.
func TestNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		expr, tz   string
		start, end string // optional StartDate / EndDate
		after      string
		want       string // "" means no fire time
	}{
		// Plain fields.
		{name: "daily, strictly after a fire time", expr: "cron(0 2 * * ? *)", after: "2026-05-10T02:00:00Z", want: "2026-05-11T02:00:00Z"},
		{name: "daily, just before", expr: "cron(0 2 * * ? *)", after: "2026-05-10T01:59:59Z", want: "2026-05-10T02:00:00Z"},
		{name: "seconds after the minute wait for the next match", expr: "cron(15 12 * * ? *)", after: "2026-05-10T12:15:30Z", want: "2026-05-11T12:15:00Z"},
		{name: "every 15 minutes", expr: "cron(0/15 * * * ? *)", after: "2026-05-10T10:07:00Z", want: "2026-05-10T10:15:00Z"},
		{name: "every tenth minute from 1", expr: "cron(1/10 * * * ? *)", after: "2026-05-10T10:52:00Z", want: "2026-05-10T11:01:00Z"},
		{name: "list", expr: "cron(5,35 14 * * ? *)", after: "2026-05-10T14:05:00Z", want: "2026-05-10T14:35:00Z"},
		{name: "weekdays skip the weekend", expr: "cron(0 18 ? * MON-FRI *)", after: "2026-05-08T18:00:00Z", want: "2026-05-11T18:00:00Z"},
		{name: "hour range wrapping midnight, weekdays only", expr: "cron(0/30 20-2 ? * MON-FRI *)", after: "2026-05-08T23:40:00Z", want: "2026-05-11T00:00:00Z"},
		{name: "hour range wrapping midnight, same night", expr: "cron(0/30 20-2 ? * MON-FRI *)", after: "2026-05-07T23:40:00Z", want: "2026-05-08T00:00:00Z"},
		{name: "day-of-week range wrapping the week", expr: "cron(0 8 ? * FRI-MON *)", after: "2026-05-12T09:00:00Z", want: "2026-05-15T08:00:00Z"},
		{name: "stepped hour range", expr: "cron(0/20 9-17/4 * * ? *)", after: "2026-05-10T09:40:00Z", want: "2026-05-10T13:00:00Z"},
		{name: "stepped hour range ends at 17", expr: "cron(0/20 9-17/4 * * ? *)", after: "2026-05-10T17:40:00Z", want: "2026-05-11T09:00:00Z"},
		{name: "month names", expr: "cron(0 0 ? JAN,FEB,MAR MON *)", after: "2026-03-30T00:00:00Z", want: "2027-01-04T00:00:00Z"},
		{name: "month and year steps", expr: "cron(0 0 1 1/3 ? 2030/2)", after: "2026-06-01T00:00:00Z", want: "2030-01-01T00:00:00Z"},
		{name: "year step skips odd years", expr: "cron(0 0 1 1/3 ? 2030/2)", after: "2030-10-01T00:00:00Z", want: "2032-01-01T00:00:00Z"},
		{name: "a day that never exists", expr: "cron(0 0 30 2 ? *)", after: "2026-01-01T00:00:00Z"},
		{name: "day 31 skips short months", expr: "cron(0 0 31 * ? *)", after: "2026-04-01T00:00:00Z", want: "2026-05-31T00:00:00Z"},

		// L, W and #.
		{name: "L: last day of February", expr: "cron(0 9 L * ? *)", after: "2026-02-01T00:00:00Z", want: "2026-02-28T09:00:00Z"},
		{name: "L: last day of February in a leap year", expr: "cron(0 9 L * ? *)", after: "2028-02-01T00:00:00Z", want: "2028-02-29T09:00:00Z"},
		{name: "LW: the 31st is a Sunday", expr: "cron(0 23 LW * ? *)", after: "2026-05-01T00:00:00Z", want: "2026-05-29T23:00:00Z"},
		{name: "3W: the 3rd is a Saturday", expr: "cron(0 9 3W * ? *)", after: "2026-01-01T00:00:00Z", want: "2026-01-02T09:00:00Z"},
		{name: "3W: the 3rd is a Sunday", expr: "cron(0 9 3W * ? *)", after: "2026-05-01T00:00:00Z", want: "2026-05-04T09:00:00Z"},
		{name: "1W: the 1st is a Saturday stays in the month", expr: "cron(0 9 1W * ? *)", after: "2026-07-02T00:00:00Z", want: "2026-08-03T09:00:00Z"},
		{name: "1W: the 1st is a Sunday", expr: "cron(0 9 1W * ? *)", after: "2026-01-02T00:00:00Z", want: "2026-02-02T09:00:00Z"},
		{name: "31W: the 31st is a Saturday", expr: "cron(0 9 31W * ? *)", after: "2026-10-01T00:00:00Z", want: "2026-10-30T09:00:00Z"},
		{name: "31W: months without a 31st do not fire", expr: "cron(0 9 31W * ? *)", after: "2026-10-30T09:00:00Z", want: "2026-12-31T09:00:00Z"},
		{name: "31W: the 31st is a Sunday stays in the month", expr: "cron(0 9 31W * ? *)", after: "2026-12-31T09:00:00Z", want: "2027-01-29T09:00:00Z"},
		{name: "3#2: second Tuesday", expr: "cron(0 9 ? * 3#2 *)", after: "2026-05-12T09:00:00Z", want: "2026-06-09T09:00:00Z"},
		{name: "TUE#2 by name", expr: "cron(0 9 ? * TUE#2 *)", after: "2026-05-01T00:00:00Z", want: "2026-05-12T09:00:00Z"},
		{name: "FRI#5 skips months with four Fridays", expr: "cron(0 10 ? * FRI#5 *)", after: "2026-05-29T10:00:00Z", want: "2026-07-31T10:00:00Z"},
		{name: "L in day-of-week: Saturday", expr: "cron(0 9 ? * L *)", after: "2026-05-12T00:00:00Z", want: "2026-05-16T09:00:00Z"},
		{name: "6L: last Friday, within the years", expr: "cron(15 10 ? * 6L 2019-2022)", after: "2019-01-01T00:00:00Z", want: "2019-01-25T10:15:00Z"},
		{name: "6L: after the last year", expr: "cron(15 10 ? * 6L 2019-2022)", after: "2022-12-30T10:15:00Z"},

		// Time zones and daylight saving time.
		{name: "Berlin: 02:30 does not exist on the spring-forward day", expr: "cron(30 2 * * ? *)", tz: "Europe/Berlin", after: "2026-03-28T12:00:00+01:00", want: "2026-03-30T02:30:00+02:00"},
		{name: "Berlin: 02:30 happens twice in the fall, first one fires", expr: "cron(30 2 * * ? *)", tz: "Europe/Berlin", after: "2026-10-24T12:00:00+02:00", want: "2026-10-25T02:30:00+02:00"},
		{name: "Berlin: the repeated 02:30 does not fire again", expr: "cron(30 2 * * ? *)", tz: "Europe/Berlin", after: "2026-10-25T00:30:00Z", want: "2026-10-26T02:30:00+01:00"},
		{name: "Berlin: half-hourly skips the repeated hour", expr: "cron(0/30 * * * ? *)", tz: "Europe/Berlin", after: "2026-10-25T00:45:00Z", want: "2026-10-25T03:00:00+01:00"},
		{name: "Berlin: half-hourly jumps the missing hour", expr: "cron(0/30 * * * ? *)", tz: "Europe/Berlin", after: "2026-03-29T01:45:00+01:00", want: "2026-03-29T03:00:00+02:00"},
		{name: "Berlin: 09:00 stays 09:00 across spring forward (23 h later)", expr: "cron(0 9 * * ? *)", tz: "Europe/Berlin", after: "2026-03-28T09:00:00+01:00", want: "2026-03-29T07:00:00Z"},
		{name: "New York: 02:00 does not exist on 2026-03-08", expr: "cron(0 2 * * ? *)", tz: "America/New_York", after: "2026-03-07T12:00:00-05:00", want: "2026-03-09T06:00:00Z"},
		{name: "New York: 01:30 fires once on 2026-11-01", expr: "cron(30 1 * * ? *)", tz: "America/New_York", after: "2026-11-01T05:00:00Z", want: "2026-11-01T05:30:00Z"},
		{name: "New York: not again an hour later", expr: "cron(30 1 * * ? *)", tz: "America/New_York", after: "2026-11-01T05:30:00Z", want: "2026-11-02T06:30:00Z"},

		// rate: fixed durations counted from the start date.
		{name: "rate from its start", expr: "rate(5 minutes)", start: "2026-05-10T10:02:00Z", after: "2026-05-10T10:13:00Z", want: "2026-05-10T10:17:00Z"},
		{name: "rate: the start date itself fires", expr: "rate(5 minutes)", start: "2026-05-10T10:02:00Z", after: "2026-05-10T09:00:00Z", want: "2026-05-10T10:02:00Z"},
		{name: "rate: strictly after a fire time", expr: "rate(5 minutes)", start: "2026-05-10T10:02:00Z", after: "2026-05-10T10:02:00Z", want: "2026-05-10T10:07:00Z"},
		{name: "rate without start: one rate after", expr: "rate(1 hour)", after: "2026-05-10T10:02:17Z", want: "2026-05-10T11:02:17Z"},
		{name: "rate(1 day) is 24 hours across spring forward", expr: "rate(1 day)", tz: "Europe/Berlin", start: "2026-03-28T09:00:00+01:00", after: "2026-03-28T09:00:00+01:00", want: "2026-03-29T10:00:00+02:00"},
		{name: "rate(5 days)", expr: "rate(5 days)", start: "2026-05-01T00:00:00Z", after: "2026-05-07T00:00:00Z", want: "2026-05-11T00:00:00Z"},
		{name: "rate before its end date", expr: "rate(1 hour)", start: "2026-05-10T10:00:00Z", end: "2026-05-10T12:00:00Z", after: "2026-05-10T10:30:00Z", want: "2026-05-10T11:00:00Z"},
		{name: "rate at its end date", expr: "rate(1 hour)", start: "2026-05-10T10:00:00Z", end: "2026-05-10T12:00:00Z", after: "2026-05-10T11:00:00Z"},
		{name: "cron waits for its start date", expr: "cron(0 2 * * ? *)", start: "2026-05-10T03:00:00Z", after: "2026-05-01T00:00:00Z", want: "2026-05-11T02:00:00Z"},

		// at: once, a wall time in the zone.
		{name: "at in New York", expr: "at(2030-01-31T02:00:00)", tz: "America/New_York", after: "2026-05-10T00:00:00Z", want: "2030-01-31T07:00:00Z"},
		{name: "at keeps its seconds", expr: "at(2028-02-29T23:59:59)", after: "2026-05-10T00:00:00Z", want: "2028-02-29T23:59:59Z"},
		{name: "at already past", expr: "at(2030-01-31T02:00:00)", tz: "America/New_York", after: "2030-01-31T07:00:00Z"},
		{name: "at in the spring-forward gap never fires", expr: "at(2026-03-29T02:30:00)", tz: "Europe/Berlin", after: "2026-01-01T00:00:00Z"},
		{name: "at in the repeated hour fires at the first one", expr: "at(2026-10-25T02:30:00)", tz: "Europe/Berlin", after: "2026-01-01T00:00:00Z", want: "2026-10-25T00:30:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseIn(tc.expr, tc.tz)
			if err != nil {
				t.Fatalf("ParseIn(%q, %q): %v", tc.expr, tc.tz, err)
			}
			if tc.start != "" {
				s = s.WithStart(mustTime(t, tc.start))
			}
			if tc.end != "" {
				s = s.WithEnd(mustTime(t, tc.end))
			}
			got, ok := s.Next(mustTime(t, tc.after))
			if tc.want == "" {
				if ok {
					t.Fatalf("Next(%s) = %s, want no fire time", tc.after, got.Format(time.RFC3339))
				}
				return
			}
			want := mustTime(t, tc.want)
			if !ok || !got.Equal(want) {
				t.Fatalf("Next(%s) = %s, %v; want %s", tc.after, got.Format(time.RFC3339), ok, want.UTC().Format(time.RFC3339))
			}
			if got.Location() != s.Location() {
				t.Errorf("Next returned a time in %v, want the schedule's zone %v", got.Location(), s.Location())
			}
		})
	}
}

// TestNextChained checks a sequence of fires over the EU fall-back night,
// the way the local runner calls Next (each fire time becomes the next
// after): every wall time once, no repeats.
func TestNextChained(t *testing.T) {
	t.Parallel()
	s, err := ParseIn("cron(0/30 1-3 * * ? *)", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	after := mustTime(t, "2026-10-24T23:00:00Z") // 01:00 CEST
	var got []string
	for range 6 {
		next, ok := s.Next(after)
		if !ok {
			t.Fatal("no fire time")
		}
		got = append(got, next.Format("15:04Z07:00"))
		after = next
	}
	want := []string{"01:30+02:00", "02:00+02:00", "02:30+02:00", "03:00+01:00", "03:30+01:00", "01:00+01:00"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("fires = %v, want %v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ expr, tz, want string }{
		{"cron(0 2 * * * *)", "UTC", "one of them must be"},
		{"rate(1 hours)", "UTC", "singular"},
		{"at(2030-01-31)", "UTC", "at()"},
		{"every day", "UTC", "must start with"},
		{"cron(0 2 * * ? *)", "Mars/Olympus_Mons", "time zone"},
	} {
		_, err := ParseIn(tc.expr, tc.tz)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseIn(%q, %q) error = %v, want one containing %q", tc.expr, tc.tz, err, tc.want)
		}
	}
}

func TestZeroScheduleNeverFires(t *testing.T) {
	t.Parallel()
	if got, ok := (Schedule{}).Next(time.Now()); ok {
		t.Fatalf("zero Schedule fired at %v", got)
	}
}

func TestItemExpansion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f    field
		item string
		want []int
	}{
		{fields[1], "22-2", []int{22, 23, 0, 1, 2}},
		{fields[1], "20-2/2", []int{20, 22, 0, 2}},
		{fields[0], "*/20", []int{0, 20, 40}},
		{fields[0], "50/5", []int{50, 55}},
		{fields[4], "FRI-MON", []int{6, 7, 1, 2}},
		{fields[3], "NOV-FEB/2", []int{11, 1}},
		{fields[2], "*/10", []int{1, 11, 21, 31}},
		{fields[5], "2190/4", []int{2190, 2194, 2198}},
	} {
		got, err := tc.f.item(tc.item)
		if err != nil {
			t.Errorf("%s %q: %v", tc.f.name, tc.item, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s %q = %v, want %v", tc.f.name, tc.item, got, tc.want)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
