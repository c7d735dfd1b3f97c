#!/bin/bash
# t0068-older-journal: a run an older cairn journaled rolls back with this
# one. Outputs that adapters added since (process.start's `adopted`,
# switch.blue-green's `backup`) are read by their default undos; a step
# journaled without them takes the value that keeps the old behaviour
# (adapter_desc.absent): the service it found is stopped, the link is
# switched back to `from`. The older journal is made by removing those
# outputs and recomputing the chain (tests/helpers/rehash), which is what
# an older cairn would have written.
. "$(dirname "$0")/lib.sh"

: "${CAIRN_REHASH:=$CAIRN_SRCDIR/build/tests/rehash}"

write_workflow app.yaml <<\EOF
cairn: 1
name: app
start: up
states:
  up:
    do: process.start
    with: { argv: [sleep, "300"], pid_file: svc.pid }
    next: link
  link:
    do: switch.blue-green
    with: { mode: symlink, link: live, to: green, targets: { blue: b, green: g } }
    next: gate
  gate: { approval: {}, next: done }
  done: { succeed: true }
EOF

test_expect_success 'a run journaled without adopted and backup rolls back: service stopped, link back to blue' '
	mkdir b g && ln -s b live &&
	test_must_fail_with 3 cairn run app.yaml >/dev/null &&
	RUN=$(last_run) &&
	pid=$(jq -r .pid svc.pid) &&
	proc_alive "$pid" &&
	test "$(readlink live)" = g &&
	first=$(q "SELECT min(seq) FROM events WHERE kind = '\''action.finished'\'' AND state IN ('\''up'\'', '\''link'\'')") &&
	sqlite3 .cairn/journal.db "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;
		UPDATE events SET payload = json_remove(payload, '\''$.outputs.adopted'\'') WHERE kind = '\''action.finished'\'' AND state = '\''up'\'';
		UPDATE events SET payload = json_remove(payload, '\''$.outputs.backup'\'') WHERE kind = '\''action.finished'\'' AND state = '\''link'\''" &&
	"$CAIRN_REHASH" .cairn/journal.db "$first" &&
	test "$(q "SELECT count(*) FROM events WHERE payload LIKE '\''%adopted%'\'' OR payload LIKE '\''%\"backup\"%'\''")" = 0 &&
	cairn reject $RUN >out &&
	test "$(q "SELECT status FROM runs WHERE id = '\''$RUN'\''")" = failed &&
	test_grep "rolled back: link, up" out &&
	test "$(readlink live)" = b &&
	test_path_is_missing svc.pid &&
	! proc_alive "$pid"
'

test_done
