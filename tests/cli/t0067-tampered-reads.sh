#!/bin/bash
# t0067-tampered-reads: the commands that read the journal still show an
# edited one, whole, for whoever has to look into it: a row holding bytes
# that are not UTF-8 (which JSON cannot hold) is shown with '?' for them
# instead of dropping the run, and report writes its page with a note
# where a run's events cannot be read. verify is what says it was edited.
. "$(dirname "$0")/lib.sh"

write_workflow app.yaml <<\EOF
cairn: 1
name: app
start: a
states:
  a: { do: exec, with: { argv: ["true"] }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'setup: two runs, one row with an actor that is not UTF-8' '
	cairn run app.yaml >/dev/null &&
	cairn run app.yaml >/dev/null &&
	A=$(q "SELECT id FROM runs ORDER BY rowid LIMIT 1") && echo $A >A &&
	cp .cairn/journal.db bad.db &&
	sqlite3 bad.db "UPDATE runs SET actor = CAST(X'\''66ff6f'\'' AS TEXT) WHERE id = '\''$A'\''" &&
	test_must_fail_with 1 cairn verify --journal bad.db >/dev/null
'

test_expect_success 'history, show, status and export keep the run, its bad bytes as ?' '
	A=$(cat A) &&
	cairn history --journal bad.db --json >h &&
	test "$(wc -l <h)" = 2 &&
	test "$(jq -r "select(.id == \"$A\") | .actor" h)" = "f?o" &&
	cairn show $A --journal bad.db --json >s &&
	test "$(jq -r .run.actor s)" = "f?o" &&
	cairn export --journal bad.db >x &&
	test "$(jq -r "select(.type == \"run\" and .id == \"$A\") | .actor" x)" = "f?o" &&
	test "$(grep -c "\"type\":\"event\"" x)" = "$(sqlite3 bad.db "SELECT count(*) FROM events")"
'

test_expect_success 'status names what is live although its row was edited' '
	A=$(cat A) &&
	cp .cairn/journal.db live.db &&
	B=$(q "SELECT id FROM runs ORDER BY rowid DESC LIMIT 1") &&
	sqlite3 live.db "UPDATE runs SET actor = CAST(X'\''66ff6f'\'' AS TEXT) WHERE id = '\''$B'\''" &&
	cairn status --journal live.db --json >st &&
	test "$(jq -r .live.run st)" = "$B" &&
	test "$(jq -r .live.actor st)" = "f?o"
'

test_expect_success 'report writes its page when a run.s events cannot be read, and says so' '
	A=$(cat A) &&
	cp .cairn/journal.db ev.db &&
	sqlite3 ev.db "DROP TRIGGER events_no_update; UPDATE events SET payload = '\''not json'\'' WHERE seq = (SELECT min(seq) FROM events WHERE run_id = '\''$A'\'') + 1" &&
	cairn report --journal ev.db --run $A -o page.html >out 2>err &&
	test_path_is_file page.html &&
	test_grep "its timeline cannot be shown: event [0-9]* .* has a payload that is not a json object" page.html &&
	test_grep "^cairn: warning: the timeline of run $A cannot be shown" err &&
	test_must_fail_with 2 cairn show $A --journal ev.db 2>err &&
	test_grep "payload that is not a json object" err &&
	test_must_fail_with 2 cairn status $A --journal ev.db 2>err
'

test_expect_success 'export -o that fails half way leaves the file as it was; a symlink is refused' '
	echo "the last export" >keep.jsonl &&
	test_must_fail_with 2 cairn export --journal ev.db -o keep.jsonl 2>err &&
	test_grep "payload that is not a json object" err &&
	echo "the last export" >expect &&
	test_cmp expect keep.jsonl &&
	test "$(ls -a | grep -c "^\.keep\.jsonl\.")" = 0 &&
	ln -s keep.jsonl link.jsonl &&
	test_must_fail_with 2 cairn export -o link.jsonl 2>err &&
	test_grep "cannot write .link.jsonl.: it is a symlink" err &&
	test_cmp expect keep.jsonl &&
	cairn export -o keep.jsonl &&
	test "$(stat -c %a keep.jsonl)" = 600 &&
	test "$(grep -c "\"type\":\"run\"" keep.jsonl)" = 2
'

test_done
