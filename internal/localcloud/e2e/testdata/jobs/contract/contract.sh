#!/bin/sh
# A command job for edp's end-to-end tests of the job contract
# (docs/jobs.md): the "mode:" line of its config says how it behaves. It
# records what happened to it under $EDP_JOB_DIR/state/, which the tests
# read (the job directory is a copy the test made).
mode=$(sed -n 's/^mode: *//p' "$EDP_CONFIG")
out=$EDP_OUTPUT_DIR
state=$EDP_JOB_DIR/state
mkdir -p "$state"
echo "run $EDP_RUN_ID attempt $EDP_ATTEMPT mode $mode"
trained() { echo "$EDP_ATTEMPT" >> "$state/$EDP_RUN_ID.trained"; }
case "$mode" in
ok)
	printf '%s\n' "$EDP_RUN_ID" > "$out/run-id.txt"
	mkdir -p "$out/sub" && echo nested > "$out/sub/file.txt"
	trained ;;
permanent)
	echo "rows 3-5 have no label: nothing to train on" >&2
	exit 65 ;;
flaky)
	if [ "$EDP_ATTEMPT" -lt 2 ]; then echo "upstream busy, try again later" >&2; exit 75; fi
	echo ok > "$out/flaky.txt"
	trained ;;
hang)
	if [ "$EDP_ATTEMPT" -lt 2 ]; then
		# A child that ignores SIGTERM too: only SIGKILL ends it.
		(trap '' TERM; exec sleep 300) &
		echo $! > "$state/$EDP_RUN_ID.child"
		trap '' TERM
		while :; do sleep 1; done
	fi
	echo ok > "$out/hang.txt"
	trained ;;
stop)
	if [ "$EDP_ATTEMPT" -lt 2 ]; then
		trap 'echo "got SIGTERM"; echo term > "$state/$EDP_RUN_ID.term"; exit 143' TERM
		echo $PPID > "$state/$EDP_RUN_ID.consumer"
		while :; do sleep 0.2; done
	fi
	echo "trained once" > "$out/model.txt"
	trained ;;
sleep)
	# Takes the config's "seconds:" (the simulator's validation).
	sleep "$(sed -n 's/^seconds: *//p' "$EDP_CONFIG")"
	echo slept > "$out/slept.txt" ;;
symlink)
	ln -s /etc/passwd "$out/passwd" ;;
many)
	i=0
	while [ $i -lt 10000 ]; do : > "$out/f$i"; i=$((i+1)); done ;;
big)
	head -c 3000000 /dev/zero > "$out/big.bin" ;;
*)
	echo "unknown mode '$mode'" >&2
	exit 78 ;;
esac
