#!/bin/bash
# t0043-promote-checks: what cairn promote checks before it journals
# anything: the release against its param, --set release, a journal it
# would create for nothing, and a release of any length.
. "$(dirname "$0")/lib.sh"

write_workflow envs.yaml <<\EOF
cairn: 1
name: envs
params:
  release: { default: "1.0.0", pattern: "^[0-9]+\\.[0-9]+\\.[0-9]+$" }
environments:
  dev: { vars: { port: 1 } }
  staging: { vars: { port: 2 }, after: dev }
  prod: { vars: { port: 3 }, after: staging, approvals: 1 }
start: a
states:
  a:
    do: exec
    with: { argv: [echo, "{{ params.release }} {{ vars.port }}"] }
    undo: { do: exec, with: { argv: [echo, undo] } }
    next: done
  done: { succeed: true }
EOF

# No pattern on the release: any string is one.
write_workflow free.yaml <<\EOF
cairn: 1
name: free
params:
  release: { default: "1.0.0" }
environments:
  dev: {}
  staging: { after: dev }
  prod: { after: staging }
start: a
states:
  a: { do: exec, with: { argv: [echo, "{{ params.release }}"] }, next: done }
  done: { succeed: true }
EOF

# pattern_error RELEASE: what envs.yaml's release param says of RELEASE.
pattern_error() {
	printf "cairn: param 'release' must match '%s', got '%s'\n" \
		'^[0-9]+\.[0-9]+\.[0-9]+$' "$1"
}

# The first two tests run where there is no journal yet.

test_expect_success 'no journal: an input error (exit 2) creates none' '
	test_must_fail_with 2 cairn promote envs.yaml --to staging 2>err &&
	echo "cairn: no release of '\''envs'\'' is live in dev to promote to staging (hint: promote one to dev first, or name one with --release)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn promote envs.yaml --to dev --release bad 2>err &&
	test_must_fail_with 2 cairn promote envs.yaml --through prod --release bad 2>err &&
	test_must_fail_with 2 cairn promote envs.yaml --to dev --set release=2.0.0 2>err &&
	test_path_is_missing .cairn
'

test_expect_success 'no journal: a refusal (exit 5) creates one to record it in' '
	test_must_fail_with 5 cairn promote envs.yaml --to staging --release 1.0.0 2>err &&
	test_grep "promotion to staging refused: release 1.0.0 has no succeeded run in dev" err &&
	echo "refused|staging|1.0.0" >expect &&
	q "SELECT status, env, release FROM runs" >rows &&
	test_cmp expect rows &&
	cairn verify
'

test_expect_success 'a release its param refuses is exit 2, says nothing of promoting and journals nothing' '
	cairn promote envs.yaml --to dev --release 1.2.3 &&
	journal_snapshot >before &&
	test_must_fail_with 2 cairn promote envs.yaml --to dev --release not-a-version >out 2>err &&
	pattern_error not-a-version >expect &&
	test_cmp expect err &&
	test_cmp /dev/null out &&
	test_must_fail_with 2 cairn promote envs.yaml --to staging --release bad 2>err &&
	pattern_error bad >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn promote envs.yaml --to prod --release bad 2>err &&
	test_cmp expect err &&
	journal_snapshot >after &&
	test_cmp before after
'

test_expect_success '--set release is refused (exit 2), not overridden' '
	journal_snapshot >before &&
	test_must_fail_with 2 cairn promote envs.yaml --to staging --set release=1.2.3 2>err &&
	echo "cairn: cannot --set release in promote: the release is the one the gates check (hint: use --release 1.2.3)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn promote envs.yaml --to staging --release 1.2.3 --set release=9.9.9 2>err &&
	echo "cairn: cannot --set release in promote: the release is the one the gates check (hint: use --release 9.9.9)" >expect &&
	test_cmp expect err &&
	journal_snapshot >after &&
	test_cmp before after &&
	cairn promote envs.yaml --to staging --release 1.2.3 &&
	test "$(q "SELECT release FROM runs WHERE env = \"staging\" AND status = \"succeeded\"")" = 1.2.3
'

# shellcheck disable=SC2034 # read by the test bodies below
long=$(printf "%0300d" 7)

test_expect_success 'a release of 300 bytes is promoted whole, as run takes it' '
	cairn run free.yaml --env dev --set release="$long" &&
	cairn promote free.yaml --to staging >out &&
	test_grep "^promoting release $long to staging from run " out &&
	cairn promote free.yaml --to prod --release "$long" &&
	printf "dev|300\nprod|300\nstaging|300\n" >expect &&
	q "SELECT env, length(release) FROM runs WHERE workflow = \"free\" ORDER BY env" >rows &&
	test_cmp expect rows
'

test_expect_success 'a refused release of 301 bytes is journaled and said whole' '
	test_must_fail_with 5 cairn promote free.yaml --to staging --release "${long}8" 2>err &&
	echo "cairn: promotion to staging refused: release ${long}8 has no succeeded run in dev; it never ran there" >expect &&
	test_cmp expect err &&
	test "$(q "SELECT length(release) FROM runs WHERE status = \"refused\" AND workflow = \"free\"")" = 301
'

# No release param: every run's release is "", and so is the one its
# promotions are gated and approved for.
write_workflow norel.yaml <<\EOF
cairn: 1
name: norel
environments:
  dev: {}
  prod: { after: dev, approvals: 1 }
start: a
states:
  a: { do: exec, with: { argv: [true] }, next: done }
  done: { succeed: true }
EOF

test_expect_success 'no release param: the gates say release "", the hint --release "", which then counts' '
	test_must_fail_with 5 cairn promote norel.yaml --to prod --release "" 2>err &&
	test_grep "refused: release \"\" has no succeeded run in dev; it never ran there" err &&
	cairn promote norel.yaml --to dev >out &&
	test_grep "^promoting release \"\" to dev$" out &&
	test_must_fail_with 5 cairn promote norel.yaml --to prod 2>err &&
	echo "cairn: promotion to prod refused: release \"\" needs 1 approval from distinct actors for prod, has 0 (hint: cairn approve prod --workflow norel --release \"\")" >expect &&
	test_cmp expect err &&
	CAIRN_ACTOR=alice cairn approve prod --workflow norel --release "" >out &&
	test_grep "^approved release \"\" of norel for prod by alice (" out &&
	cairn promote norel.yaml --to prod
'

test_expect_success 'approve refuses an empty workflow name (exit 2) and journals nothing' '
	journal_snapshot >before &&
	test_must_fail_with 2 cairn approve prod --workflow "" --release 1.0.0 2>err &&
	echo "cairn: approve ENV needs a workflow name, not '\'''\'' (hint: the '\''name'\'' of the workflow file)" >expect &&
	test_cmp expect err &&
	journal_snapshot >after &&
	test_cmp before after
'

test_expect_success 'promote of a workflow without environments says there is nowhere to promote' '
	write_workflow noenv.yaml <<-\EOF &&
	cairn: 1
	name: noenv
	start: a
	states:
	  a: { do: exec, with: { argv: ["true"] }, next: done }
	  done: { succeed: true }
	EOF
	test_must_fail_with 2 cairn promote noenv.yaml --to dev 2>err &&
	echo "cairn: workflow '\''noenv'\'' declares no environments, so there is nothing to promote to (hint: cairn run noenv.yaml)" >expect &&
	test_cmp expect err
'

test_done
