#!/bin/bash
# t0008-graph: cairn graph prints a workflow's state machine as Graphviz dot
# or Mermaid: every state by kind, the start, next, choice and failure
# edges, parallel branches grouped, undo steps marked.
. "$(dirname "$0")/lib.sh"

QUICKSTART=$CAIRN_SRCDIR/examples/quickstart/deploy.yaml
UNDO='↶ undo: exec'

# Every kind of state and of edge: do states with and without undo, a
# parallel state whose branches have and lack undo, a choice with two
# whens and a default, a wait, on_failure to a state, on_failure: fail,
# the default on_failure (rollback), a succeed and a fail state, and a
# name with a hyphen.
write_workflow wf.yaml <<\EOF
cairn: 1
name: graph-demo
params:
  replicas: { default: 1 }
  mode: { default: fast }
start: prepare
states:
  prepare:
    description: write the "env" file
    do: exec
    with: { argv: [/bin/true] }
    undo: { do: exec, with: { argv: [/bin/true] } }
    next: infra
  infra:
    parallel:
      db: { do: exec, with: { argv: [/bin/true] },
            undo: { do: exec, with: { argv: [/bin/true] } } }
      cache: { do: exec, with: { argv: [/bin/true] } }
      queue: { do: exec, with: { argv: [/bin/true] },
               undo: { do: exec, with: { argv: [/bin/true] } } }
    next: deploy-app
    on_failure: fail
  deploy-app:
    do: exec
    with: { argv: [/bin/true] }
    next: check
    on_failure: recover
  check:
    choice:
      - when: 'params.mode == "slow" and params.replicas > 1'
        next: settle
      - when: "params.replicas >= 3"
        next: smoke
    default: smoke
  settle:
    wait: 1m30s
    next: smoke
  smoke:
    do: exec
    with: { argv: [/bin/true] }
    next: done
  recover:
    do: exec
    with: { argv: [/bin/true] }
    next: broken
    on_failure: fail
  done: { succeed: true }
  broken: { fail: true, message: "deploy failed" }
EOF

STATES='prepare infra deploy-app check settle smoke recover done broken'
BRANCHES='db cache queue'

# has_lines EXPECT FILE: every line of EXPECT is a whole line of FILE.
has_lines() {
	local line
	while IFS= read -r line; do
		test_grep -x -F "$line" "$2" || return 1
	done <"$1"
}

test_expect_success 'graph prints dot by default: exit 0, nothing on stderr, no journal' '
	cairn graph wf.yaml >out.dot 2>err &&
	test_cmp /dev/null err &&
	head -n 1 out.dot >first &&
	echo "digraph \"graph-demo\" {" >expect &&
	test_cmp expect first &&
	tail -n 1 out.dot >last &&
	echo "}" >expect &&
	test_cmp expect last &&
	cairn graph --format dot wf.yaml >again.dot &&
	test_cmp out.dot again.dot &&
	test_path_is_missing .cairn
'

test_expect_success 'the output is the same on every call and has no trailing white space' '
	cairn graph wf.yaml >one.dot &&
	cairn graph wf.yaml >two.dot &&
	test_cmp one.dot two.dot &&
	test_grep ! -E "[[:space:]]$" one.dot &&
	cairn graph --format mermaid wf.yaml >one.mmd &&
	cairn graph --format mermaid wf.yaml >two.mmd &&
	test_cmp one.mmd two.mmd &&
	test_grep ! -E "[[:space:]]$" one.mmd
'

if command -v dot >/dev/null 2>&1; then
	test_expect_success 'dot renders it to SVG without a warning, with every state and branch' '
		cairn graph wf.yaml | dot -Tsvg >out.svg 2>dot-err &&
		test_cmp /dev/null dot-err &&
		test_grep "<svg" out.svg &&
		sed "s/&#45;/-/g" out.svg >text.svg &&
		for name in $STATES $BRANCHES rollback fail; do
			test_grep -F ">$name</text>" text.svg || exit 1
		done
	'

	test_expect_success 'dot renders the quickstart example too' '
		cairn graph "$QUICKSTART" | dot -Tsvg >quick.svg 2>dot-err &&
		test_cmp /dev/null dot-err &&
		test_grep "<svg" quick.svg &&
		test_grep -F ">how_many</text>" quick.svg
	'
else
	test_skip 'dot renders it to SVG without a warning, with every state and branch' 'graphviz (dot) is not installed'
	test_skip 'dot renders the quickstart example too' 'graphviz (dot) is not installed'
fi

test_expect_success 'dot: one node per state, quoted, in file order, shaped by kind' '
	cairn graph wf.yaml >out.dot &&
	sed -n "s/^  \(\"[^\"]*\"\) \[shape=\([a-z]*\),.*/\1 \2/p" out.dot >nodes &&
	cat >expect <<-\EOF &&
	"(start)" circle
	"prepare" box
	"deploy-app" box
	"check" diamond
	"settle" ellipse
	"smoke" box
	"recover" box
	"done" doublecircle
	"broken" doubleoctagon
	"(rollback)" octagon
	"(fail)" octagon
	EOF
	test_cmp expect nodes &&
	test_grep -F "label=\"settle\\n◷ 1m30s\"" out.dot &&
	test_grep -F "label=\"deploy-app\\nexec\"" out.dot &&
	test_grep -F "tooltip=\"write the \\\"env\\\" file\"" out.dot
'

test_expect_success 'dot: the parallel state is a cluster of its branches between a fork and a join' '
	cairn graph wf.yaml >out.dot &&
	sed -n "/^  subgraph \"cluster_infra\" {$/,/^  }$/p" out.dot >cluster &&
	test -s cluster &&
	test_grep -x "    label=\"infra\";" cluster &&
	for b in $BRANCHES; do
		test_grep -F "    \"infra/$b\" [shape=box," cluster &&
		test_grep -F "label=\"$b\\nexec" cluster &&
		test_grep -x -F "    \"infra\" -> \"infra/$b\";" cluster &&
		test_grep -x -F "    \"infra/$b\" -> \"infra:join\";" cluster || exit 1
	done &&
	test_grep -x -F "  \"prepare\" -> \"infra\";" out.dot &&
	test_grep -x -F "  \"infra:join\" -> \"deploy-app\";" out.dot
'

test_expect_success 'dot: the undo mark is on exactly the states and branches with an undo' '
	cairn graph wf.yaml >out.dot &&
	grep -F "$UNDO" out.dot | sed "s/^ *\(\"[^\"]*\"\).*/\1/" >marked &&
	cat >expect <<-\EOF &&
	"prepare"
	"infra/db"
	"infra/queue"
	EOF
	test_cmp expect marked &&
	test "$(grep -c "class=\"kind_do has_undo\"" out.dot)" -eq 3 &&
	test "$(grep -c "class=\"kind_do\"" out.dot)" -eq 4
'

test_expect_success 'dot: the start is marked, next edges are plain, choice edges labelled' '
	cairn graph wf.yaml >out.dot &&
	cat >expect <<-\EOF &&
	  "(start)" -> "prepare";
	  "deploy-app" -> "check";
	  "check" -> "settle" [label="params.mode == \"slow\" and params.replicas > 1"];
	  "check" -> "smoke" [label="params.replicas >= 3"];
	  "check" -> "smoke" [label="default"];
	  "settle" -> "smoke";
	  "smoke" -> "done";
	  "recover" -> "broken";
	EOF
	has_lines expect out.dot
'

test_expect_success 'dot: failure edges are dashed, to a state, to rollback or to fail' '
	cairn graph wf.yaml >out.dot &&
	grep -F "style=dashed" out.dot | grep -F -- " -> " >failures &&
	cat >expect <<-\EOF &&
	  "prepare" -> "(rollback)" [style=dashed, color="#e65100"];
	  "infra:join" -> "(fail)" [style=dashed, color="#c62828"];
	  "deploy-app" -> "recover" [style=dashed, color="#c62828", fontcolor="#c62828", label="on_failure"];
	  "smoke" -> "(rollback)" [style=dashed, color="#e65100"];
	  "recover" -> "(fail)" [style=dashed, color="#c62828"];
	EOF
	test_cmp expect failures &&
	test "$(grep -c "^  \"(rollback)\" \[" out.dot)" -eq 1 &&
	test "$(grep -c "^  \"(fail)\" \[" out.dot)" -eq 1
'

test_expect_success 'the rollback and fail nodes appear only when a state uses them' '
	write_workflow plain.yaml <<-\EOF &&
	cairn: 1
	name: plain
	start: one
	states:
	  one: { do: exec, with: { argv: [/bin/true] }, next: done, on_failure: fail }
	  done: { succeed: true }
	EOF
	cairn graph plain.yaml >plain.dot &&
	test_grep ! -F "(rollback)" plain.dot &&
	test_grep -F "\"(fail)\" [" plain.dot &&
	cairn graph --format mermaid plain.yaml >plain.mmd &&
	test_grep ! rollback plain.mmd &&
	test_grep -x -F "  fail>\"fail\"]:::pseudo_fail" plain.mmd &&
	sed "s/on_failure: fail/on_failure: done/" plain.yaml >plain2.yaml &&
	cairn graph plain2.yaml >plain2.dot &&
	test_grep ! -F "(rollback)" plain2.dot &&
	test_grep ! -F "(fail)" plain2.dot
'

test_expect_success 'mermaid: a flowchart with generated ids, names in labels, shapes by kind' '
	cairn graph --format mermaid wf.yaml >out.mmd 2>err &&
	test_cmp /dev/null err &&
	head -n 1 out.mmd >first &&
	echo "flowchart TD" >expect &&
	test_cmp expect first &&
	cat >expect <<-\EOF &&
	  start(("start")):::entry
	  s0["prepare<br/>exec<br/>↶ undo: exec"]:::kind_do
	  s2["deploy-app<br/>exec"]:::kind_do
	  s3{"check"}:::kind_choice
	  s4(["settle<br/>◷ 1m30s"]):::kind_wait
	  s5["smoke<br/>exec"]:::kind_do
	  s6["recover<br/>exec"]:::kind_do
	  s7((("done"))):::kind_succeed
	  s8{{"broken"}}:::kind_fail
	  rollback>"rollback"]:::pseudo_rollback
	  fail>"fail"]:::pseudo_fail
	EOF
	has_lines expect out.mmd &&
	for kind in do parallel choice wait succeed fail; do
		test_grep "^  classDef kind_$kind fill:" out.mmd || exit 1
	done
'

test_expect_success 'mermaid: the parallel state is a subgraph of its branches' '
	cairn graph --format mermaid wf.yaml >out.mmd &&
	sed -n "/^  subgraph s1\[\"infra\"\]$/,/^  end$/p" out.mmd >sub &&
	cat >expect <<-\EOF &&
	  subgraph s1["infra"]
	    s1b0["db<br/>exec<br/>↶ undo: exec"]:::kind_do
	    s1b1["cache<br/>exec"]:::kind_do
	    s1b2["queue<br/>exec<br/>↶ undo: exec"]:::kind_do
	  end
	EOF
	test_cmp expect sub &&
	test_grep -x "  class s1 kind_parallel" out.mmd
'

test_expect_success 'mermaid: every edge, with quoted labels and escaped quotes and operators' '
	cairn graph --format mermaid wf.yaml >out.mmd &&
	grep -E "^  [a-z0-9]+ -" out.mmd >edges &&
	cat >expect <<-\EOF &&
	  start --> s0
	  s0 --> s1
	  s0 -.-> rollback
	  s1 --> s2
	  s1 -.-> fail
	  s2 --> s3
	  s2 -.->|"on_failure"| s6
	  s3 -->|"params.mode == #quot;slow#quot; and params.replicas #gt; 1"| s4
	  s3 -->|"params.replicas #gt;= 3"| s5
	  s3 -->|"default"| s5
	  s4 --> s5
	  s5 --> s7
	  s5 -.-> rollback
	  s6 --> s8
	  s6 -.-> fail
	EOF
	test_cmp expect edges &&
	test_grep -x "  linkStyle 6 stroke:#c62828,color:#c62828" out.mmd &&
	test_grep -x "  linkStyle 2,12 stroke:#e65100" out.mmd &&
	test_grep -x "  linkStyle 4,14 stroke:#c62828" out.mmd
'

test_expect_success 'mermaid: the undo mark and class are on exactly the nodes with an undo' '
	cairn graph --format mermaid wf.yaml >out.mmd &&
	test "$(grep -c -F "$UNDO" out.mmd)" -eq 3 &&
	test_grep -x "  class s0,s1b0,s1b2 has_undo" out.mmd &&
	test_grep "^  classDef has_undo " out.mmd
'

test_expect_success 'an unknown --format: exit 2, one line naming the formats' '
	test_must_fail_with 2 cairn graph --format bogus wf.yaml >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: option '\''--format'\'' must be dot or mermaid, got '\''bogus'\''" >expect &&
	test_cmp expect err
'

test_expect_success 'a broken workflow: exit 2, the loader error with file:line:col' '
	sed "s/^    next: done$/    next: nowhere/" wf.yaml >broken.yaml &&
	test_must_fail_with 2 cairn graph broken.yaml >out 2>err &&
	test_cmp /dev/null out &&
	echo "broken.yaml:41:11: error: unknown state '\''nowhere'\'' in '\''next'\'' of state '\''smoke'\'' (hint: states are prepare, infra, deploy-app, check, settle, ...)" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn graph --format mermaid broken.yaml >out 2>err &&
	test_cmp /dev/null out &&
	test_cmp expect err
'

test_expect_success 'a missing file: exit 2, one line' '
	test_must_fail_with 2 cairn graph missing.yaml >out 2>err &&
	test_cmp /dev/null out &&
	test "$(wc -l <err)" -eq 1 &&
	test_grep "^cairn: .*missing\.yaml" err
'

test_expect_success 'graph needs exactly one file and has no --json' '
	test_must_fail_with 2 cairn graph 2>err &&
	echo "cairn: graph needs one workflow file (usage: cairn graph FILE [--format dot|mermaid])" >expect &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn graph wf.yaml broken.yaml 2>err &&
	test_cmp expect err &&
	test_must_fail_with 2 cairn graph --json wf.yaml >out 2>err &&
	test_cmp /dev/null out &&
	echo "cairn: graph has no JSON output (hint: --format dot or --format mermaid)" >expect &&
	test_cmp expect err
'

test_expect_success 'graph --help: exit 0, its usage line and --format' '
	cairn graph --help >out 2>err &&
	test_cmp /dev/null err &&
	head -n 1 out >first &&
	echo "usage: cairn graph FILE [--format dot|mermaid]" >expect &&
	test_cmp expect first &&
	test_grep -E "^  --format dot\|mermaid +the language to print \(default: dot\)$" out &&
	cairn help graph >out2 &&
	test_cmp out out2 &&
	cairn --help >all &&
	test_grep -E "^  graph +print the state machine as Graphviz dot or Mermaid$" all
'

# A wait is labelled with its duration as a workflow writes it, exactly:
# the same text a timeout has in an adapter's error, which the parser
# reads back (not the rounded "1.5s"/"1d02h" of elapsed times).
write_workflow waits.yaml <<\EOF
cairn: 1
name: waits
start: short
states:
  short: { wait: 1500ms, next: odd }
  odd: { wait: 1m0.25s, next: long }
  long: { wait: 26h3m, next: done }
  done: { succeed: true }
EOF

test_expect_success 'wait labels: 1.5s, 1m0.25s, 1d2h3m' '
	cairn graph waits.yaml >w.dot &&
	test_grep -F "label=\"short\\n◷ 1.5s\"" w.dot &&
	test_grep -F "label=\"odd\\n◷ 1m0.25s\"" w.dot &&
	test_grep -F "label=\"long\\n◷ 1d2h3m\"" w.dot
'

test_done
