#!/bin/bash
# t0024-report: cairn report -o FILE.html from a journal of real runs (a
# succeeded run per environment, a failed run with parallel states, retries,
# a cancelled branch and a rollback with undo steps): the page is
# well-formed, self-contained, names every state, undo path and run,
# escapes what the journal holds, and headless Chromium renders it; and the
# documented errors.
. "$(dirname "$0")/lib.sh"

# ---- fixtures ----------------------------------------------------------------

# migrate fails twice then succeeds (3 attempts); publish/files fails when
# params.fail names a missing folder, cancelling publish/slow.
write_workflow shop.yaml <<\EOF
cairn: 1
name: shop
params:
  release: { default: "1.0.0" }
  note: { default: "plain" }
  fail: { default: "" }
environments:
  dev: { vars: { port: 1 } }
  staging: { vars: { port: 2 } }
start: prep
states:
  prep:
    do: exec
    with: { shell: "echo prep" }
    undo: { do: exec, with: { shell: "echo undo prep" } }
    next: infra
  infra:
    parallel:
      db: { do: exec, with: { shell: "sleep 0.3" },
            undo: { do: exec, with: { shell: "echo undo db" } } }
      cache: { do: exec, with: { shell: "sleep 0.1" },
               undo: { do: exec, with: { shell: "echo undo cache" } } }
    next: migrate
  migrate:
    do: exec
    with: { shell: "n=$(cat tries.txt 2>/dev/null || echo 0); echo $((n+1)) >tries.txt; test $n -ge 2" }
    retry: { attempts: 3, delay: 20ms }
    undo: { do: exec, with: { shell: "echo undo migrate" } }
    next: publish
  publish:
    parallel:
      files: { do: file.write, with: { path: "{{ params.fail }}out.txt", content: "x" } }
      slow: { do: exec, with: { argv: [sleep, "0.4"] },
              undo: { do: exec, with: { shell: "echo undo slow" } } }
    next: done
  done: { succeed: true }
EOF

NOTE='<script>alert(1)</script> & <b>&'

test_expect_success 'setup: dev succeeds, staging succeeds, dev fails and rolls back' '
	cairn run shop.yaml --env dev >out &&
	last_run >r1 && rm -f tries.txt &&
	cairn run shop.yaml --env staging >out &&
	last_run >r2 && rm -f tries.txt &&
	test_must_fail_with 1 cairn run shop.yaml --env dev --set release=1.1.0 \
		--set "note=$NOTE" --set "fail=missing/<b>&" >out &&
	last_run >r3 &&
	test_grep "rolled back" out &&
	sort -u r1 r2 r3 >ids &&
	test "$(wc -l <ids)" -eq 3
'

R1=$(cat r1 2>/dev/null)
R2=$(cat r2 2>/dev/null)
R3=$(cat r3 2>/dev/null)

# ---- the page ------------------------------------------------------------------

# A reader of a WAL journal leaves an empty -wal and an -shm behind: a
# first reader makes them, so the snapshots compare the database itself.
test_expect_success 'report -o writes the page 0644, atomically, reading only' '
	cairn history >/dev/null &&
	journal_snapshot >before &&
	test_grep "^e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 " before &&
	cairn report -o report.html >out &&
	echo "wrote report.html" >expect &&
	test_cmp expect out &&
	journal_snapshot >after &&
	test_cmp before after &&
	test "$(stat -c %a report.html)" = 644 &&
	echo old >old.html &&
	cairn report --output old.html >out &&
	test_grep "^<!DOCTYPE html>" old.html &&
	ls -a >files &&
	test_grep ! "\.report\.html\.\|\.old\.html\." files
'

test_expect_success 'report -o and --write-anchor replace only files: a FIFO or a symlink is refused' '
	mkfifo fifo.html &&
	ln -s target.html link.html &&
	test_must_fail_with 2 cairn report -o fifo.html 2>err &&
	test_grep "cannot write .fifo.html.: it is a FIFO, and cairn replaces only regular files" err &&
	test_must_fail_with 2 cairn report -o link.html 2>err &&
	test_grep "it is a symlink" err &&
	test_must_fail_with 2 cairn verify --write-anchor fifo.html 2>err &&
	test_grep "anchor: cannot write .fifo.html.: it is a FIFO" err &&
	test -p fifo.html && test -L link.html && test_path_is_missing target.html &&
	rm fifo.html link.html
'

test_expect_success 'the page is well-formed (XML nesting, HTML parser)' '
	xmllint --noout report.html &&
	{ xmllint --html --noout report.html 2>errors || :; } &&
	# libxml2 parses HTML 4: section and the inline SVG are unknown tags
	# to it, everything else must parse cleanly
	{ grep "error" errors | grep -v "Tag [a-z]* invalid" >bad || :; } &&
	test_cmp /dev/null bad
'

test_expect_success 'the timeline names every state and undo path of the newest run' '
	test_grep "<h2>Run $R3</h2>" report.html &&
	cairn show --json "$R3" | jq -r ".states[].path" >paths &&
	for p in infra/db infra/cache migrate publish/files publish/slow undo:prep undo:infra/db undo:migrate; do
		grep -qx "$p" paths || { echo "fixture lost $p"; exit 1; }
	done &&
	while read -r p; do
		test_grep -F ">$p</text><rect" report.html &&
		test_grep -F "<td class=\"path\">$p</td>" report.html || exit 1
	done <paths
'

test_expect_success 'the chart: axis, outcomes, attempts, rollback marker, legend' '
	sed -n "/<svg class=\"gantt\"/,/<\/svg>/p" report.html >svg &&
	test_grep -F "<text class=\"tick\" x=\"280.0\" y=\"22\">0ms</text>" svg &&
	test "$(grep -c "class=\"tick\"" svg)" -ge 3 &&
	test_grep -E "<g class=\"step failed\"><title>publish/files: failed" svg &&
	test_grep -E "<g class=\"step failed\"><title>publish: failed" svg &&
	test_grep -E "<g class=\"step cancelled\"><title>publish/slow: cancelled" svg &&
	test_grep -E "<g class=\"step succeeded\"><title>migrate: succeeded, [0-9]+ms, 3 attempts" svg &&
	grep "<title>migrate:" svg >migrate &&
	test "$(grep -o "class=\"attempt\"" migrate | wc -l)" -eq 2 &&
	test_grep -F ">×3</text>" migrate &&
	test_grep -E "<g class=\"step undo undo-row\"><title>undo:prep: succeeded" svg &&
	test_grep -F "class=\"rollback-label\"" svg &&
	# the undo rows come after every forward row
	grep -n "<g class=" svg | sed -n "/undo-row/=" >undo_rows &&
	test "$(head -n 1 undo_rows)" -gt "$(grep -n "<g class=" svg | grep -v undo-row | wc -l)" &&
	test_grep -F "<ul class=\"legend\">" report.html &&
	test_grep -F "swatch undo" report.html
'

test_expect_success 'the history: every run, per environment, newest first' '
	for r in "$R1" "$R2" "$R3"; do
		test_grep -F "$r" report.html || exit 1
	done &&
	sed -n "/<h3>Environment dev<\/h3>/,/<\/table>/p" report.html >dev &&
	grep -o "<td class=\"id\">[^<]*<\?a\?[^<]*" dev | grep -o "[0-9A-Z]\{26\}" >actual &&
	printf "%s\n" "$R3" "$R1" >expect &&
	test_cmp expect actual &&
	sed -n "/<h3>Environment staging<\/h3>/,/<\/table>/p" report.html >staging &&
	grep -o "[0-9A-Z]\{26\}" staging >actual &&
	echo "$R2" >expect &&
	test_cmp expect actual &&
	test_grep -F "<span class=\"status failed\">failed</span>" dev &&
	test_grep -F "<span class=\"status succeeded\">succeeded</span>" staging &&
	test_grep -F "<tr class=\"chosen\"><td class=\"id\"><a href=\"#run\">$R3</a>" dev
'

test_expect_success 'the page fetches nothing from anywhere' '
	test_grep ! -i "https\?:" report.html &&
	test_grep ! -iE "(src|href|action)=\"[^\"#]" report.html &&
	test_grep ! -iE "<(script|link|img|iframe|object|embed|base)[ >]" report.html &&
	test_grep ! -iE "@import|url\(|@font-face" report.html &&
	test_grep -F "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src '\''none'\''" report.html
'

test_expect_success 'what the journal holds is escaped: params and errors' '
	test_grep ! -F "<script>alert" report.html &&
	test_grep ! -F "<b>&" report.html &&
	test_grep -F "&quot;note&quot;:&quot;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;&amp;&quot;" report.html &&
	test_grep -F "cannot write &#39;missing/&lt;b&gt;&amp;out.txt&#39;" report.html
'

test_expect_success '--env: only that environment; its newest run is drawn' '
	cairn report --env staging -o staging.html >out &&
	test_grep "<h2>Run $R2</h2>" staging.html &&
	test_grep "<h3>Environment staging</h3>" staging.html &&
	test_grep ! "Environment dev" staging.html &&
	test_grep ! -F "$R1" staging.html &&
	test_grep ! -F "$R3" staging.html
'

test_expect_success '--run RUN (a prefix): that run is drawn, through done' '
	P=$(printf %s "$R1" | cut -c1-20) &&
	cairn report --run "$P" -o one.html >out &&
	test_grep "<h2>Run $R1</h2>" one.html &&
	test_grep -F ">done</text><rect" one.html &&
	test_grep -F "<g class=\"step passed\"><title>done: passed" one.html &&
	test_grep ! -F "undo:" one.html &&
	test_grep ! -F "class=\"rollback" one.html
'

test_expect_success '--limit N keeps N runs per environment and says so' '
	cairn report --limit 1 -o limited.html >out &&
	sed -n "/<h3>Environment dev<\/h3>/,/<\/p>/p" limited.html >dev &&
	test_grep ! -F "<td class=\"id\">$R1" dev &&
	test_grep "1 older run not shown" dev
'

# ---- errors ----------------------------------------------------------------------

test_expect_success 'errors: one line, exit 2, nothing written' '
	journal_snapshot >before &&
	test_must_fail_with 2 cairn report -o x.html --run 01ZZZZZZZZZZZZZZZZZZZZZZZZ 2>err &&
	echo "cairn: no run '\''01ZZZZZZZZZZZZZZZZZZZZZZZZ'\'' in journal '\''$TRASH/.cairn/journal.db'\'' (hint: '\''cairn history'\'' lists the runs)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn report -o nodir/x.html 2>err &&
	echo "cairn: cannot write '\''nodir/x.html'\'': No such file or directory (hint: does its folder exist?)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn report 2>err &&
	echo "cairn: report needs a file to write (hint: '\''cairn report -o report.html'\'')" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn report -o x.html --env prod 2>err &&
	echo "cairn: no runs in environment '\''prod'\'' (hint: '\''cairn history'\'' lists the runs)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn report -o 2>err &&
	echo "cairn: missing value for '\''-o'\'' (hint: see '\''cairn report --help'\'')" >expect &&
	test_cmp expect err &&
	test_path_is_missing x.html &&
	test_path_is_missing nodir &&
	journal_snapshot >after &&
	test_cmp before after
'

# Outside the trash directory, whose journal discovery would find.
test_expect_success 'errors: no journal here, or none at --journal' '
	E=$CAIRN_TEST_BASE/elsewhere &&
	mkdir -p "$E" &&
	(cd "$E" && test_must_fail_with 2 cairn report -o x.html 2>err) &&
	test "$(wc -l <"$E/err")" -eq 1 &&
	test_grep "^cairn: no cairn journal here" "$E/err" &&
	test_path_is_missing "$E/x.html" &&
	test_path_is_missing "$E/.cairn" &&
	test_must_fail_with 2 cairn report --journal none.db -o x.html 2>err &&
	echo "cairn: no journal at '\''none.db'\'': No such file or directory" >expect &&
	test_cmp expect err &&
	test_path_is_missing none.db &&
	test_path_is_missing x.html
'

# A step whose error holds escape sequences and other controls (an OSC
# that sets the window title, a screen clear, a bell, SOH): the run's
# lines show them as \xHH instead of sending them to the terminal, and
# the report, which XML could not hold them in even as &#27;, too.
write_workflow ctl.yaml <<\EOF
cairn: 1
name: ctl
start: noisy
states:
  noisy:
    do: exec
    with: { argv: [sh, -c, 'printf "bad\033]0;TITLE\007 \033[2J\001 end\n" >&2; exit 1'] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'control characters a step printed: shown as \xHH by run and in the report' '
	mkdir -p ctl && cd ctl &&
	test_must_fail_with 1 cairn run ../ctl.yaml >out 2>err &&
	! grep -q "$(printf "[\001-\010\016-\037\177]")" out err &&
	test_grep "^✗ noisy failed: exited with status 1: bad\\\\x1b\]0;TITLE\\\\x07 \\\\x1b\[2J\\\\x01 end (" out &&
	test_grep "^run [0-9A-Z]* failed in .*: state .noisy. failed: exited with status 1: bad\\\\x1b\]0;TITLE\\\\x07 \\\\x1b\[2J\\\\x01 end (log: " out &&
	cairn report -o ctl.html >/dev/null &&
	! grep -q "$(printf "[\001-\010\016-\037\177]")" ctl.html &&
	test_grep "bad\\\\x1b\]0;TITLE\\\\x07 \\\\x1b\[2J\\\\x01 end" ctl.html &&
	xmllint --noout ctl.html
'

# ---- rendered by a browser ---------------------------------------------------------

# chromium FILE ARGS...: headless Chromium on file://FILE, with a profile
# in the trash directory; its stderr (D-Bus and GPU warnings) goes to a
# log.
chromium_run() {
	local f=$1
	shift
	timeout 120 chromium --headless --no-sandbox --disable-gpu \
		--user-data-dir="$TRASH/chromium-profile" --no-first-run \
		--window-size=1200,900 "$@" "file://$TRASH/$f" 2>>chromium.log
}

# png_size FILE: "WIDTH HEIGHT" from the IHDR chunk.
png_size() {
	od -An -tu1 -j16 -N8 "$1" |
		awk "{print \$1*16777216+\$2*65536+\$3*256+\$4, \$5*16777216+\$6*65536+\$7*256+\$8}"
}

if command -v chromium >/dev/null 2>&1; then
	test_expect_success 'chromium renders it: a screenshot far from blank' '
		printf "<!DOCTYPE html><html><head><title>x</title></head><body></body></html>\n" >blank.html &&
		chromium_run blank.html --screenshot="$TRASH/blank.png" >/dev/null &&
		chromium_run report.html --screenshot="$TRASH/shot.png" >/dev/null &&
		test_path_is_file shot.png &&
		echo "1200 900" >expect &&
		png_size shot.png >actual &&
		test_cmp expect actual &&
		head -c 8 shot.png | od -An -c | tr -d " " >sig &&
		echo "211PNG\r\n032\n" >expect &&
		test_cmp expect sig &&
		b=$(stat -c %s blank.png) s=$(stat -c %s shot.png) &&
		echo "blank $b bytes, report $s bytes" &&
		# a blank 1200x900 page compresses to a few KB; text, tables and
		# coloured bars take many times that
		test "$s" -gt $((b * 5)) &&
		test "$s" -gt 20000
	'

	test_expect_success 'chromium: the rendered DOM names the states and runs' '
		chromium_run report.html --dump-dom >dom.html &&
		test_grep "<svg class=\"gantt\"" dom.html &&
		while read -r p; do
			test_grep -F ">$p</text>" dom.html || exit 1
		done <paths &&
		for r in "$R1" "$R2" "$R3"; do
			test_grep -F "$r" dom.html || exit 1
		done &&
		test_grep ! -F "<script>alert" dom.html &&
		test_grep -F "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;&amp;" dom.html
	'
else
	test_skip 'chromium renders it: a screenshot far from blank' \
		'chromium is not installed (apt-get install chromium)'
	test_skip 'chromium: the rendered DOM names the states and runs' \
		'chromium is not installed (apt-get install chromium)'
fi

test_done
