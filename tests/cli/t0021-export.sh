#!/bin/bash
# t0021-export: cairn export writes every run and event, as JSON lines or
# RFC 4180 CSV, filtered by --since; it reads the journal only.
. "$(dirname "$0")/lib.sh"

write_workflow deploy.yaml <<\EOF
cairn: 1
name: deploy
params:
  note: { default: "plain" }
start: build
states:
  build:
    do: exec
    with: { argv: [sh, -c, "printf '{\"note\": \"%s\"}' \"$0\"", "{{ params.note }}"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'setup: three runs, one with a comma, a quote and a newline in a param' '
	cairn run deploy.yaml >/dev/null &&
	cairn run deploy.yaml --set "note=a, \"b\"
c" >/dev/null &&
	sleep 1.1 &&
	cairn run deploy.yaml >/dev/null &&
	q "SELECT count(*) FROM runs" >runs.count &&
	q "SELECT count(*) FROM events" >events.count &&
	test "$(cat runs.count)" = 3
'

test_expect_success 'jsonl: every line parses, every run and event is there' '
	q .dump >before &&
	cairn export >out.jsonl &&
	q .dump >after &&
	test_cmp before after &&
	jq -e . out.jsonl >/dev/null &&
	test "$(jq -c "select(.type == \"run\")" out.jsonl | wc -l)" = "$(cat runs.count)" &&
	test "$(jq -c "select(.type == \"event\")" out.jsonl | wc -l)" = "$(cat events.count)" &&
	test "$(wc -l <out.jsonl)" = $(( $(cat runs.count) + $(cat events.count) ))
'

test_expect_success 'jsonl: runs first, then events in seq order 1..N with their hashes' '
	jq -r .type out.jsonl | uniq >types &&
	printf "run\nevent\n" >expect &&
	test_cmp expect types &&
	jq -r "select(.type == \"event\") | .seq" out.jsonl >seqs &&
	seq 1 "$(cat events.count)" >expect &&
	test_cmp expect seqs &&
	jq -r "select(.type == \"event\") | [.seq, .hash, .prev_hash] | @tsv" out.jsonl >hashes &&
	q -separator "	" "SELECT seq, hash, prev_hash FROM events ORDER BY seq" >expect &&
	test_cmp expect hashes &&
	jq -r "select(.type == \"run\") | .id" out.jsonl >ids &&
	q "SELECT id FROM runs ORDER BY created_ms, id" >expect &&
	test_cmp expect ids
'

test_expect_success 'jsonl: an event has the documented fields, payload as an object' '
	jq -c "select(.type == \"event\" and .seq == 1) | keys_unsorted" out.jsonl >keys &&
	echo "[\"type\",\"seq\",\"run\",\"kind\",\"state\",\"attempt\",\"time_ms\",\"payload\",\"prev_hash\",\"hash\"]" >expect &&
	test_cmp expect keys &&
	test "$(jq -r "select(.type == \"event\" and .seq == 1) | .payload | type" out.jsonl)" = object
'

test_expect_success 'csv: a header, then one record per run and event; quoting round-trips' '
	cairn export --format csv -o out.csv &&
	test "$(stat -c %a out.csv)" = 600 &&
	head -n 1 out.csv | tr -d "\r" >header &&
	echo "type,seq,run,kind,state,attempt,time_ms,payload,prev_hash,hash,workflow,file,file_sha256,env,release,params,status,actor,parent,created_ms,updated_ms,finished_ms" >expect &&
	test_cmp expect header &&
	python3 - "$(cat runs.count)" "$(cat events.count)" <<-\EOF
	import csv, json, sys
	rows = list(csv.DictReader(open("out.csv", newline="")))
	runs = [r for r in rows if r["type"] == "run"]
	events = [r for r in rows if r["type"] == "event"]
	assert len(runs) == int(sys.argv[1]), len(runs)
	assert len(events) == int(sys.argv[2]), len(events)
	assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))
	notes = [json.loads(r["params"])["note"] for r in runs]
	assert "a, \"b\"\nc" in notes, notes
	for e in events:
	    json.loads(e["payload"])
	EOF
'

test_expect_success 'csv: the tricky field is quoted, its quotes doubled' '
	printf "%s\n" "\"{\"\"note\"\":\"\"a, \\\"\"b\\\"\"\\nc\"\"}\"," >pattern &&
	cat pattern &&
	test_grep -F -f pattern out.csv
'

test_expect_success '--since: a future date exports nothing, a past one everything' '
	cairn export --since 2999-01-01 >none &&
	test_cmp /dev/null none &&
	cairn export --since 2000-01-01T00:00Z >all &&
	test_cmp out.jsonl all &&
	cairn export --since 7d >recent &&
	test_cmp out.jsonl recent
'

test_expect_success '--since a time between runs keeps only what came after it' '
	t=$(q "SELECT created_ms FROM runs ORDER BY created_ms LIMIT 1 OFFSET 2") &&
	iso=$(date -u -d "@$(( t / 1000 ))" +%Y-%m-%dT%H:%M:%SZ) &&
	cairn export --since "$iso" >late &&
	want=$(q "SELECT count(*) FROM events WHERE time_ms >= ($t / 1000) * 1000") &&
	test "$(jq -c "select(.type == \"event\")" late | wc -l)" = "$want" &&
	test "$want" -lt "$(cat events.count)"
'

test_expect_success 'a bad --format or --since: one line, exit 2' '
	test_must_fail_with 2 cairn export --format xml >out 2>err &&
	echo "cairn: unknown export format '\''xml'\'' (use jsonl or csv)" >expect &&
	test_cmp expect err &&
	test_cmp /dev/null out &&
	test_must_fail_with 2 cairn export --since yesterday >out 2>err &&
	echo "cairn: --since: '\''yesterday'\'' is not a date or a duration (hint: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z] in UTC, or a duration ago such as 7d or 12h)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn export --since 2026-13-01 >out 2>err &&
	test $(wc -l <err) = 1 &&
	test_must_fail_with 2 cairn export --json >out 2>err &&
	echo "cairn: export has no --json (hint: --format jsonl is JSON lines)" >expect &&
	test_cmp expect err
'

test_expect_success 'export of a journal that does not exist: exit 2, none created' '
	test_must_fail_with 2 cairn export --journal nosuch.db >out 2>err &&
	test $(wc -l <err) = 1 &&
	test_path_is_missing nosuch.db
'

test_done
