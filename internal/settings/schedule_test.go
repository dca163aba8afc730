package settings

import (
	"errors"
	"strings"
	"testing"
)

// The cases come from AWS's documentation: the EventBridge User Guide's
// "Cron expressions" reference (its field table, the wildcard descriptions,
// the Limitations list and the Examples table) and "Rate expressions"
// reference (its Limitations paragraph and examples), which "Schedule types on
// EventBridge Scheduler" in the EventBridge Scheduler User Guide follows, and
// the at(yyyy-mm-ddThh:mm:ss) format of the Scheduler API's
// ScheduleExpression. Where a case is built from a sentence rather than copied
// from an example, the comment says so.

func TestValidateScheduleAcceptsDocumentedExpressions(t *testing.T) {
	t.Parallel()
	valid := []string{
		// Cron reference, Examples table.
		"cron(0 10 * * ? *)",            // 10:00 every day
		"cron(15 12 * * ? *)",           // 12:15 every day
		"cron(0 18 ? * MON-FRI *)",      // 18:00 Monday to Friday
		"cron(0 8 1 * ? *)",             // 08:00 on the 1st of the month
		"cron(0/15 * * * ? *)",          // every 15 minutes
		"cron(0/10 * ? * MON-FRI *)",    // every 10 minutes on weekdays
		"cron(0/5 8-17 ? * MON-FRI *)",  // every 5 minutes, 08:00-17:55, weekdays
		"cron(0/30 20-2 ? * MON-FRI *)", // a range that wraps past midnight
		// Cron reference, put-rule examples.
		"cron(0 12 * * ? *)",
		"cron(5,35 14 * * ? *)",
		"cron(15 10 ? * 6L 2019-2022)", // last Friday of the month, 2019 to 2022
		// Built from the wildcard descriptions.
		"cron(0 0 ? JAN,FEB,MAR MON *)", // "JAN,FEB,MAR includes January, February, and March"
		"cron(0 0 1-15 * ? *)",          // "1-15 includes days 1 through 15"
		"cron(1/10 * * * ? *)",          // "1/10 to specify every tenth minute"
		"cron(0 0 7 * ? *)",             // "enter 7 ... and ? in the Day-of-week field"
		"cron(0 9 L * ? *)",             // L: last day of the month
		"cron(0 9 ? * L *)",             // L: last day of the week
		"cron(0 9 3W * ? *)",            // "3W specifies the weekday closest to the third day"
		"cron(0 9 ? * 3#2 *)",           // "3#2 would be the second Tuesday of the month"
		"cron(0 9 ? * TUE#2 *)",         // the same with the day's name
		"cron(0 0 1 1/3 ? 2030/2)",      // increments in the month and year fields
		"cron(0 23 LW * ? *)",           // L and W together: the last weekday of the month
		"cron(0 2 * * ? *)",             // edp's default
		// Rate reference: "rate(1 hour) and rate(5 hours) are valid", and its examples.
		"rate(1 minute)",
		"rate(5 minutes)",
		"rate(1 hour)",
		"rate(5 hours)",
		"rate(1 day)",
		"rate(15 minutes)", // "every 15 minutes or every five days"
		"rate(5 days)",
		// One-time schedules: at(yyyy-mm-ddThh:mm:ss).
		"at(2016-03-04T17:27:00)",
		"at(2030-01-31T02:00:00)",
		"at(2028-02-29T23:59:59)", // a leap day
	}
	for _, expr := range valid {
		t.Run(expr, func(t *testing.T) {
			t.Parallel()
			if err := ValidateSchedule(expr); err != nil {
				t.Errorf("ValidateSchedule(%q) = %v, want nil", expr, err)
			}
		})
	}
}

func TestValidateScheduleRejectsWithReason(t *testing.T) {
	t.Parallel()
	cases := []struct {
		expr string
		want string // a fragment of the reason
	}{
		// Limitations: "You can't specify the Day-of-month and Day-of-week
		// fields in the same cron expression".
		{"cron(0 2 * * * *)", `field 3 (day-of-month) and field 5 (day-of-week): one of them must be "?"`},
		{"cron(0 2 1 * MON *)", `one of them must be "?"`},
		{"cron(0 18 * * MON-FRI *)", `one of them must be "?"`},
		{"cron(0 2 ? * ? *)", `only one of them can be "?"`},
		// "Cron expressions have six required fields".
		{"cron(0 2 * * ?)", "exactly 6 fields"},
		{"cron(0 0 2 * * ? *)", "exactly 6 fields (minutes hours day-of-month month day-of-week year), got 7"},
		// Values outside the field table's ranges.
		{"cron(60 2 * * ? *)", "cron field 1 (minutes)"},
		{"cron(5-60 * * * ? *)", "60 is outside 0-59"},
		{"cron(0 24 * * ? *)", "cron field 2 (hours) \"24\": 24 is outside 0-23"},
		{"cron(0 2 0 * ? *)", "0 is outside 1-31"},
		{"cron(0 2 32 * ? *)", "32 is outside 1-31"},
		{"cron(0 2 * 13 ? *)", "cron field 4 (month)"},
		{"cron(0 2 * JANUARY ? *)", "JAN,FEB,MAR"},
		{"cron(0 2 ? * 0 *)", "0 is outside 1-7"},
		{"cron(0 2 ? * 8 *)", "8 is outside 1-7"},
		{"cron(0 2 * * ? 1969)", "1969 is outside 1970-2199"},
		{"cron(0 2 * * ? 2200)", "2200 is outside 1970-2199"},
		{"cron(0 2 * * ? 2022-2019)", "runs backwards"},
		// Wildcards a field does not list.
		{"cron(0/5 * ? * MON/2 *)", `"/" is not allowed here`},
		{"cron(L 2 * * ? *)", `"L" is not allowed here`},
		{"cron(0 2 ? * 3W *)", `cron field 5 (day-of-week) "3W": W (nearest weekday) belongs in the day-of-month field`},
		{"cron(0 2 1#2 * ? *)", `"#" is not allowed here`},
		{"cron(0 ? * * ? *)", `"?" is not allowed here`},
		{"cron(0 2 ? * mon-fri *)", "upper case"},
		// "If you use a '#' character, you can define only one expression in
		// the day-of-week field. For example, "3#1,6#3" is not valid".
		{"cron(0 9 ? * 3#1,6#3 *)", "single expression"},
		{"cron(0 9 ? * 3#6 *)", "from 1 to 5"},
		{"cron(0 9 ? * 8#1 *)", "8 is outside 1-7"},
		{"cron(0 9 L,15 * ? *)", "stand alone"},
		{"cron(0 9 L-3 * ? *)", "stand alone"},
		{"cron(0/0 * * * ? *)", "increment after / must be a whole number from 1 to 59"},
		{"cron(/5 * * * ? *)", "needs a start value"},
		{"cron(0 2 * * ? *", "closing parenthesis"},
		// Rate reference: "rate(1 hours) and rate(5 hour) aren't valid".
		{"rate(1 hours)", `a value of 1 takes the singular unit "hour"`},
		{"rate(5 hour)", `a value above 1 takes the plural unit "hours"`},
		{"rate(1 minutes)", `singular unit "minute"`},
		{"rate(5 minute)", `plural unit "minutes"`},
		{"rate(0 minutes)", "positive whole number"},
		{"rate(-1 minutes)", "positive whole number"},
		{"rate(5 seconds)", "minute, minutes, hour, hours, day or days"},
		{"rate(5minutes)", "one space"},
		// at(yyyy-mm-ddThh:mm:ss) with something wrong in it.
		{"at(2022-11-20 13:00:00)", "at() takes exactly yyyy-mm-ddThh:mm:ss"},
		{"at(2030-01-31T02:00:00Z)", "without a zone suffix"},
		{"at(2030-01-31T02:00:00+01:00)", "its time zone is " + KeyScheduleTimeZone},
		{"at(2030-01-31T02:00)", "takes exactly"},
		{"at(2023-02-29T10:00:00)", "is not a valid date and time: day out of range"},
		{"at(2030-13-01T10:00:00)", "month out of range"},
		{"at(2030-01-31T24:00:00)", "hour out of range"},
		// Spacing: every documented expression is written with nothing
		// between a parenthesis and its neighbour and one space between
		// parts; Scheduler refuses "cron( 0 2 * * ? * )" at deploy (issue
		// 14, finding 7). The message shows the expression as it should be.
		{"cron( 0 2 * * ? * )", `cron(minutes hours day-of-month month day-of-week year) takes no space right after "(" or before ")": write cron(0 2 * * ? *)`},
		{"cron( 0 2 * * ? *)", `no space right after "(" or before ")"`},
		{"cron(0 2 * * ? * )", `no space right after "(" or before ")"`},
		{"cron(0 2 * * ? *\n)", `no space right after "(" or before ")"`},
		{"cron(0  2 * * ? *)", "separates its parts by one space each (no doubled spaces or tabs): write cron(0 2 * * ? *)"},
		{"cron(0\t2 * * ? *)", "one space each"},
		{"cron(0 2 * *\u00a0? *)", "one space each"}, // a no-break space
		{"rate( 5 minutes)", `rate(value unit) takes no space right after "(" or before ")": write rate(5 minutes)`},
		{"rate(5 minutes )", "write rate(5 minutes)"},
		{"rate(5  minutes)", "one space each"},
		{"rate(1\thour)", "one space each"},
		{"at( 2030-01-31T02:00:00)", `takes no space right after "(" or before ")": write at(2030-01-31T02:00:00)`},
		{"at(2030-01-31T02:00:00 )", "write at(2030-01-31T02:00:00)"},
		// Not an expression at all.
		{"0 2 * * ? *", `must start with "cron(", "rate(" or "at("`},
		{"", `must start with "cron(", "rate(" or "at("`},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			t.Parallel()
			err := ValidateSchedule(tc.expr)
			if err == nil {
				t.Fatalf("ValidateSchedule(%q) = nil, want an error saying %q", tc.expr, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ValidateSchedule(%q) = %q, want it to say %q", tc.expr, err, tc.want)
			}
		})
	}
}

// The defect in issue 8: this expression passed synth and failed at deploy.
func TestFromContextRejectsBothDayFieldsNamingTheKey(t *testing.T) {
	t.Parallel()
	_, err := FromContext(lookup(map[string]any{KeySchedule: "cron(0 2 * * * *)"}))
	if err == nil {
		t.Fatal("FromContext accepted cron(0 2 * * * *)")
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error does not wrap ErrInvalid: %v", err)
	}
	for _, want := range []string{`"edp:schedule"`, `"cron(0 2 * * * *)"`, `one of them must be "?"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestFromContextAcceptsAOneTimeSchedule(t *testing.T) {
	t.Parallel()
	got, err := FromContext(lookup(map[string]any{KeySchedule: " at(2030-01-31T02:00:00) "}))
	if err != nil {
		t.Fatalf("FromContext: %v", err)
	}
	if want := "at(2030-01-31T02:00:00)"; got.Schedule != want {
		t.Errorf("Schedule = %q, want %q", got.Schedule, want)
	}
}
