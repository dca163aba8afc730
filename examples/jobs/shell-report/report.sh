#!/bin/sh
# shell-report: an edp command job that needs nothing but a POSIX shell and
# awk, sed, wc and date (busybox has them all, and so does Debian).
#
#   sh ./report.sh              read $EDP_CONFIG, write report.txt and
#                               summary.json into $EDP_OUTPUT_DIR
#   sh ./report.sh --validate   check $EDP_CONFIG only
#
# The config is flat YAML, one `key: value` a line:
#
#   title: Daily report                 required, 1-200 characters
#   lines: 10                           required, 1-1000 report lines
#   fail_transient_until_attempt: 2     optional: exit 75 while EDP_ATTEMPT < 2
#   sleep_seconds: 5                    optional, 0-3600: work slowly
#
# Exit status, as the edp command-job contract reads it:
#   0    success: every file in $EDP_OUTPUT_DIR is published
#   64   usage error (bad argument or environment)   permanent
#   65   invalid config                              permanent
#   66   config missing or unreadable                permanent
#   74   an output could not be written              retried
#   75   a transient failure, on purpose             retried
#   130  stopped by SIGINT, 143 by SIGTERM           retried
# A permanent failure prints its reason as the last line on stderr: the run
# record keeps the tail of the output.

set -u
prog=report.sh
max_config_bytes=65536

die() { # die STATUS MESSAGE: one line on stderr, then exit STATUS
	printf '%s: %s\n' "$prog" "$2" >&2
	exit "$1"
}

# Stop promptly when the consumer says so (job timeout, task shutdown): the
# run is retried, so there is nothing to save. `sleep ... & wait` below keeps
# the shell free to take the signal at once.
child=
stop() { # stop STATUS SIGNAL
	if [ -n "$child" ]; then kill "$child" 2>/dev/null; fi
	printf '%s: stopped by %s\n' "$prog" "$2" >&2
	exit "$1"
}
trap 'stop 143 SIGTERM' TERM
trap 'stop 130 SIGINT' INT

mode=run
case $# in
0) ;;
1)
	[ "$1" = --validate ] || die 64 "unknown argument \"$1\" (usage: report.sh [--validate])"
	mode=validate
	;;
*) die 64 "too many arguments (usage: report.sh [--validate])" ;;
esac

# check_int NAME VALUE MIN MAX: VALUE must be a decimal integer in [MIN, MAX].
check_int() {
	case $2 in
	'' | *[!0-9]* | 0?*) die 65 "invalid config: $1 must be an integer from $3 to $4, got \"$2\"" ;;
	esac
	if [ "${#2}" -gt 9 ] || [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
		die 65 "invalid config: $1 must be an integer from $3 to $4, got $2"
	fi
}

# json_str VALUE: VALUE as a JSON string (quotes, backslashes and control
# characters escaped; other bytes are copied).
json_str() {
	printf '%s' "$1" | LC_ALL=C awk '
		BEGIN {
			for (i = 1; i < 32; i++) esc[sprintf("%c", i)] = sprintf("\\u%04x", i)
			esc["\""] = "\\\""; esc["\\"] = "\\\\"
			esc["\t"] = "\\t"; esc["\r"] = "\\r"
		}
		{ s = s (NR > 1 ? "\n" : "") $0 }
		END {
			out = "\""
			for (i = 1; i <= length(s); i++) {
				c = substr(s, i, 1)
				out = out ((c in esc) ? esc[c] : (c == "\n" ? "\\n" : c))
			}
			print out "\""
		}'
}

# --- read the config ---------------------------------------------------------

config=${EDP_CONFIG:-}
[ -n "$config" ] || die 66 "EDP_CONFIG is not set: it names the config file to read"
if [ ! -f "$config" ] || [ ! -r "$config" ]; then
	die 66 "config $config does not exist or is not a readable file"
fi
case $config in
*.yaml | *.yml) ;;
*) die 65 "invalid config: this job reads YAML (flat key: value lines), got ${config##*/}; upload a .yaml or .yml file" ;;
esac
size=$(($(wc -c <"$config")))
[ "$size" -le "$max_config_bytes" ] || die 65 "invalid config: it is $size bytes, at most $max_config_bytes"

# awk checks the syntax and prints key=value for each key, or an error line
# and exits 1. Values are plain or quoted scalars; comments, blank lines and
# a leading --- are allowed; nesting, lists, anchors and tags are not.
parsed=$(LC_ALL=C awk '
	BEGIN {
		known["title"]; known["lines"]
		known["fail_transient_until_attempt"]; known["sleep_seconds"]
		for (i = 1; i < 32; i++) ctl = ctl sprintf("%c", i)
		ctl = ctl sprintf("%c", 127)
	}
	function fail(msg) { print "line " NR ": " msg; exit 1 }
	function hasctl(s,   i) {
		for (i = 1; i <= length(s); i++) if (index(ctl, substr(s, i, 1))) return 1
		return 0
	}
	{
		sub(/\r$/, "")
		if ($0 ~ /^[ \t]*(#|$)/ || $0 == "---") next
		if ($0 ~ /^[ \t]/) fail("indented line: this job reads flat key: value lines only")
		colon = index($0, ":")
		if (colon == 0) fail("expected key: value")
		key = substr($0, 1, colon - 1)
		val = substr($0, colon + 1)
		if (key !~ /^[A-Za-z_][A-Za-z0-9_]*$/) fail("expected key: value with a key of letters, digits and _")
		if (!(key in known)) fail("unknown key \"" key "\" (known: title, lines, fail_transient_until_attempt, sleep_seconds)")
		if (key in seen) fail("duplicate key \"" key "\"")
		seen[key] = 1
		if (val != "" && val !~ /^[ \t]/) fail("expected a blank after \"" key ":\"")
		sub(/^[ \t]+/, "", val)
		q = substr(val, 1, 1)
		if (q == "\"" || q == "'\''") {
			rest = substr(val, 2)
			end = index(rest, q)
			if (end == 0) fail("unterminated quote in the value of " key)
			tail = substr(rest, end + 1)
			val = substr(rest, 1, end - 1)
			if (tail !~ /^([ \t]+(#.*)?)?$/) fail("text after the quoted value of " key)
			if (q == "\"" && index(val, "\\")) fail("backslash escapes are not supported (value of " key ")")
		} else {
			if (substr(val, 1, 1) == "#") val = ""
			else if (match(val, /[ \t]#/)) val = substr(val, 1, RSTART - 1)
			sub(/[ \t]+$/, "", val)
			if (val == "~" || val == "null") val = ""
			if (val ~ /^[][{}&*!|>%@`]/) fail("the value of " key " must be a plain scalar (no lists, maps, anchors, tags or block scalars)")
		}
		if (hasctl(val)) fail("the value of " key " contains a control character")
		print key "=" val
	}' "$config") || die 65 "invalid config: $(printf '%s\n' "$parsed" | sed -n '$p')"

get() { printf '%s\n' "$parsed" | sed -n "s/^$1=//p"; }

title=$(get title)
lines=$(get lines)
fail_until=$(get fail_transient_until_attempt)
sleep_seconds=$(get sleep_seconds)

[ -n "$title" ] || die 65 "invalid config: title is missing or empty (e.g. title: Daily report)"
[ "${#title}" -le 200 ] || die 65 "invalid config: title is ${#title} bytes, at most 200"
check_int lines "$lines" 1 1000
if [ -n "$fail_until" ]; then check_int fail_transient_until_attempt "$fail_until" 1 100; else fail_until=0; fi
if [ -n "$sleep_seconds" ]; then check_int sleep_seconds "$sleep_seconds" 0 3600; else sleep_seconds=0; fi

if [ "$mode" = validate ]; then
	printf '%s: %s: ok (title "%s", %s lines)\n' "$prog" "$config" "$title" "$lines"
	exit 0
fi

# --- run ---------------------------------------------------------------------

out=${EDP_OUTPUT_DIR:-}
[ -n "$out" ] || die 64 "EDP_OUTPUT_DIR is not set: it names the directory for the outputs"
[ -d "$out" ] || die 64 "EDP_OUTPUT_DIR $out is not a directory"
attempt=${EDP_ATTEMPT:-1}
case $attempt in
'' | *[!0-9]* | 0*) die 64 "EDP_ATTEMPT must be a positive integer, got \"$attempt\"" ;;
esac
[ "${#attempt}" -le 9 ] || die 64 "EDP_ATTEMPT is out of range: $attempt"

printf '%s: run %s, config %s, attempt %s, deadline %s\n' "$prog" \
	"${EDP_RUN_ID:-(none)}" "${EDP_CONFIG_KEY:-$config}" "$attempt" "${EDP_DEADLINE:-(none)}"

if [ "$attempt" -lt "$fail_until" ]; then
	# Exit 75 (EX_TEMPFAIL) is neither 0 nor a permanent status: edp retries.
	die 75 "attempt $attempt fails on purpose (fail_transient_until_attempt: $fail_until): exit 75, to be retried"
fi

if [ "$sleep_seconds" -gt 0 ]; then
	printf '%s: working for %s s\n' "$prog" "$sleep_seconds"
	sleep "$sleep_seconds" &
	child=$!
	wait "$child"
	child=
fi

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ -n "${EDP_CONFIG_BUCKET:-}" ]; then
	source_name="s3://$EDP_CONFIG_BUCKET/${EDP_CONFIG_KEY:-}"
	[ -z "${EDP_CONFIG_VERSION:-}" ] || source_name="$source_name (version $EDP_CONFIG_VERSION)"
else
	source_name=$config
fi

{
	printf '%s\n' "$title"
	printf '%s\n' "$title" | sed 's/./=/g'
	printf '\n'
	printf 'run:      %s\n' "${EDP_RUN_ID:-(none)}"
	printf 'config:   %s\n' "$source_name"
	printf 'attempt:  %s\n' "$attempt"
	printf 'created:  %s\n' "$now"
	printf '\n'
	awk -v n="$lines" 'BEGIN { for (i = 1; i <= n; i++) printf "%4d. line %d of %d\n", i, i, n }'
} >"$out/report.txt" || die 74 "cannot write $out/report.txt"
line_count=$(($(wc -l <"$out/report.txt")))

{
	printf '{\n'
	printf '  "run_id": %s,\n' "$(json_str "${EDP_RUN_ID:-}")"
	printf '  "config_bucket": %s,\n' "$(json_str "${EDP_CONFIG_BUCKET:-}")"
	printf '  "config_key": %s,\n' "$(json_str "${EDP_CONFIG_KEY:-}")"
	printf '  "config_version": %s,\n' "$(json_str "${EDP_CONFIG_VERSION:-}")"
	printf '  "attempt": %s,\n' "$attempt"
	printf '  "title": %s,\n' "$(json_str "$title")"
	printf '  "lines": %s,\n' "$lines"
	printf '  "line_count": %s,\n' "$line_count"
	printf '  "created_at": "%s"\n' "$now"
	printf '}\n'
} >"$out/summary.json" || die 74 "cannot write $out/summary.json"

printf '%s: wrote report.txt (%s lines) and summary.json\n' "$prog" "$line_count"
