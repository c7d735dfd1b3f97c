#!/bin/bash
# t0026-present-usemap: how graph, plan, show and report present use and map
# states: a used workflow (nested once more) as a cluster of its states
# whose failures lead where the use state's do, map states with their
# items, and the paths under a use or map state indented under it.
. "$(dirname "$0")/lib.sh"

# present uses lib/db.yaml (which uses lib/inner.yaml and maps over a
# YAML list) with on_failure: cleanup, maps over a list param one item at
# a time, and uses lib/inner.yaml once more with on_failure: fail.
# --set bad=api makes the map's second instance fail, --set db_check=false
# the check in db (which then fails db).
write_workflow lib/inner.yaml <<\EOF
cairn: 1
name: inner
params:
  port: { type: integer }
start: boot
states:
  boot:
    do: exec
    with: { argv: [/bin/true] }
    undo: { do: exec, with: { argv: [/bin/true] } }
    next: ok
  ok: { succeed: true }
EOF

write_workflow lib/db.yaml <<\EOF
cairn: 1
name: db
params:
  port: { type: integer, default: 5432 }
  check: { default: "true" }
outputs:
  url: "db://127.0.0.1:{{ params.port }}"
start: start
states:
  start:
    do: exec
    with: { argv: [/bin/true] }
    undo: { do: exec, with: { argv: [/bin/true] } }
    next: core
  core:
    use: ./inner.yaml
    with: { port: "{{ params.port }}" }
    next: ping
  ping:
    map:
      items: [x, y]
      do: exec
      with: { argv: [/bin/true] }
      undo: { do: exec, with: { argv: [/bin/true] } }
    next: check
  check:
    do: exec
    with: { argv: ["/bin/{{ params.check }}"] }
    next: done
    on_failure: repair
  repair:
    do: exec
    with: { argv: [/bin/true] }
    next: broken
  done: { succeed: true }
  broken: { fail: true, message: "db broken" }
EOF

write_workflow present.yaml <<\EOF
cairn: 1
name: present
params:
  services: { type: list, default: [auth, api] }
  bad: { default: none }
  db_check: { default: "true" }
start: prep
states:
  prep:
    do: exec
    with: { argv: [/bin/true] }
    next: db
  db:
    use: ./lib/db.yaml
    with: { port: 6000, check: "{{ params.db_check }}" }
    next: health
    on_failure: cleanup
  health:
    description: every service answers
    map:
      items: "{{ params.services }}"
      max_concurrency: 1
      do: exec
      with: { argv: [/usr/bin/test, "{{ item }}", "!=", "{{ params.bad }}"] }
      undo: { do: exec, with: { argv: [/bin/true] } }
    next: cache
  cache:
    use: ./lib/inner.yaml
    with: { port: 7000 }
    next: done
    on_failure: fail
  cleanup:
    do: exec
    with: { argv: [/bin/true] }
    next: failed
  done: { succeed: true }
  failed: { fail: true }
EOF

# ---- graph: dot -----------------------------------------------------------------

test_expect_success 'dot: each used workflow is a cluster after its use state, nested ones inside' '
	cairn graph present.yaml >out.dot 2>err &&
	test_cmp /dev/null err &&
	grep -E "^ *(subgraph|label=|})" out.dot >frames &&
	cat >expect <<-\EOF &&
	  subgraph "cluster_db" {
	    label="db: use db.yaml";
	    subgraph "cluster_db/core" {
	      label="db/core: use inner.yaml";
	    }
	  }
	  subgraph "cluster_cache" {
	    label="cache: use inner.yaml";
	  }
	}
	EOF
	test_cmp expect frames &&
	sed -n "/^    subgraph \"cluster_db\/core\" {$/,/^    }$/p" out.dot >inner &&
	test_grep -F "      \"db/core/boot\" [shape=box, style=\"rounded,filled\", fillcolor=\"#e3f2fd\", color=\"#1565c0\", penwidth=2, class=\"kind_do has_undo\", label=\"boot\\nexec\\n↶ undo: exec\"];" inner &&
	test_grep -F "      \"db/core/ok\" [shape=doublecircle," inner &&
	test "$(grep -c "class=\"use_frame\"" out.dot)" -eq 3
'

test_expect_success 'dot: a map state is a box3d with its adapter times its items and max_concurrency' '
	cairn graph present.yaml >out.dot &&
	test_grep -x -F "  \"health\" [shape=box3d, style=\"filled\", fillcolor=\"#e3f2fd\", color=\"#1565c0\", penwidth=2, class=\"kind_map has_undo\", label=\"health\\nexec × params.services\\n↶ undo: exec\\nmax_concurrency: 1\", tooltip=\"every service answers\"];" out.dot &&
	test_grep -x -F "    \"db/ping\" [shape=box3d, style=\"filled\", fillcolor=\"#e3f2fd\", color=\"#1565c0\", penwidth=2, class=\"kind_map has_undo\", label=\"ping\\nexec × 2 items\\n↶ undo: exec\"];" out.dot
'

test_expect_success 'dot: use enters its workflow, succeed returns, failures go where the use state sends them' '
	cairn graph present.yaml >out.dot &&
	grep -F -- " -> " out.dot | grep -v "^    " >edges &&
	cat >expect <<-\EOF &&
	  "(start)" -> "prep";
	  "prep" -> "db";
	  "prep" -> "(rollback)" [style=dashed, color="#e65100"];
	  "db" -> "db/start";
	  "db" -> "cleanup" [style=dashed, color="#c62828", fontcolor="#c62828", label="on_failure"];
	  "db/start" -> "db/core";
	  "db/start" -> "cleanup" [style=dashed, color="#c62828", fontcolor="#c62828", label="on_failure"];
	  "db/core" -> "db/core/boot";
	  "db/core" -> "cleanup" [style=dashed, color="#c62828", fontcolor="#c62828", label="on_failure"];
	  "db/core/boot" -> "db/core/ok";
	  "db/core/boot" -> "cleanup" [style=dashed, color="#c62828", fontcolor="#c62828", label="on_failure"];
	  "db/core/ok" -> "db/ping" [label="return"];
	  "db/ping" -> "db/check";
	  "db/ping" -> "cleanup" [style=dashed, color="#c62828", fontcolor="#c62828", label="on_failure"];
	  "db/check" -> "db/done";
	  "db/check" -> "db/repair" [style=dashed, color="#c62828", fontcolor="#c62828", label="on_failure"];
	  "db/repair" -> "db/broken";
	  "db/repair" -> "cleanup" [style=dashed, color="#c62828", fontcolor="#c62828", label="on_failure"];
	  "db/done" -> "health" [label="return"];
	  "db/broken" -> "cleanup" [style=dashed, color="#c62828", fontcolor="#c62828", label="on_failure"];
	  "health" -> "cache";
	  "health" -> "(rollback)" [style=dashed, color="#e65100"];
	  "cache" -> "cache/boot";
	  "cache" -> "(fail)" [style=dashed, color="#c62828"];
	  "cache/boot" -> "cache/ok";
	  "cache/boot" -> "(fail)" [style=dashed, color="#c62828"];
	  "cache/ok" -> "done" [label="return"];
	  "cleanup" -> "failed";
	  "cleanup" -> "(rollback)" [style=dashed, color="#e65100"];
	EOF
	test_cmp expect edges
'

if command -v dot >/dev/null 2>&1; then
	test_expect_success 'dot renders nested use and map states to SVG without a warning' '
		cairn graph present.yaml | dot -Tsvg >out.svg 2>dot-err &&
		test_cmp /dev/null dot-err &&
		sed "s/&#45;/-/g" out.svg >text.svg &&
		for t in "db: use db.yaml" "db/core: use inner.yaml" "cache: use inner.yaml" \
			"exec × params.services" "exec × 2 items" "max_concurrency: 1" \
			boot ok ping check repair broken return; do
			test_grep -F ">$t</text>" text.svg || exit 1
		done &&
		test "$(grep -c "<g id=\"clust[0-9]*\" class=\"cluster use_frame\">" out.svg)" -eq 3
	'
else
	test_skip 'dot renders nested use and map states to SVG without a warning' 'graphviz (dot) is not installed'
fi

# ---- graph: Mermaid -------------------------------------------------------------

test_expect_success 'mermaid: used workflows are nested subgraphs holding their states' '
	cairn graph --format mermaid present.yaml >out.mmd 2>err &&
	test_cmp /dev/null err &&
	sed -n "/^  s1\[/,/^  s11\[/p" out.mmd >frames &&
	cat >expect <<-\EOF &&
	  s1[["db"]]:::kind_use
	  subgraph f0["db: use db.yaml"]
	    s2["start<br/>exec<br/>↶ undo: exec"]:::kind_do
	    s3[["core"]]:::kind_use
	    subgraph f1["db/core: use inner.yaml"]
	      s4["boot<br/>exec<br/>↶ undo: exec"]:::kind_do
	      s5((("ok"))):::kind_succeed
	    end
	    s6["ping<br/>exec × 2 items<br/>↶ undo: exec"]:::kind_map
	    s7["check<br/>exec"]:::kind_do
	    s8["repair<br/>exec"]:::kind_do
	    s9((("done"))):::kind_succeed
	    s10{{"broken"}}:::kind_fail
	  end
	  s11["health<br/>exec × params.services<br/>↶ undo: exec<br/>max_concurrency: 1"]:::kind_map
	EOF
	test_cmp expect frames &&
	test_grep -x "  class f0,f1,f2 use_frame" out.mmd &&
	test_grep -x "  class s2,s4,s6,s11,s13 has_undo" out.mmd &&
	test_grep "^  classDef use_frame fill:" out.mmd
'

test_expect_success 'mermaid: the same edges as dot, return and failure edges labelled' '
	cairn graph --format mermaid present.yaml >out.mmd &&
	grep -E "^  [a-z0-9]+ -" out.mmd >edges &&
	cat >expect <<-\EOF &&
	  start --> s0
	  s0 --> s1
	  s0 -.-> rollback
	  s1 --> s2
	  s1 -.->|"on_failure"| s15
	  s2 --> s3
	  s2 -.->|"on_failure"| s15
	  s3 --> s4
	  s3 -.->|"on_failure"| s15
	  s4 --> s5
	  s4 -.->|"on_failure"| s15
	  s5 -->|"return"| s6
	  s6 --> s7
	  s6 -.->|"on_failure"| s15
	  s7 --> s9
	  s7 -.->|"on_failure"| s8
	  s8 --> s10
	  s8 -.->|"on_failure"| s15
	  s9 -->|"return"| s11
	  s10 -.->|"on_failure"| s15
	  s11 --> s12
	  s11 -.-> rollback
	  s12 --> s13
	  s12 -.-> fail
	  s13 --> s14
	  s13 -.-> fail
	  s14 -->|"return"| s16
	  s15 --> s17
	  s15 -.-> rollback
	EOF
	test_cmp expect edges &&
	test_grep -x "  linkStyle 4,6,8,10,13,15,17,19 stroke:#c62828,color:#c62828" out.mmd &&
	test_grep -x "  linkStyle 2,21,28 stroke:#e65100" out.mmd &&
	test_grep -x "  linkStyle 23,25 stroke:#c62828" out.mmd
'

# What a Mermaid parser would refuse first: a subgraph left open or closed
# twice, a node declared twice, an edge to an id never declared.
test_expect_success 'mermaid: subgraphs balance, ids are declared once, edges join declared ids' '
	cairn graph --format mermaid present.yaml >out.mmd &&
	awk '\''
		/^ *subgraph [a-z0-9]+\["[^"]*"\]$/ { open++; id = $2; sub(/\[.*/, "", id); decl[id]++; next }
		/^ *end$/ { if (--open < 0) { print "end without subgraph: " NR; bad = 1 } next }
		/^ *[a-z0-9]+ -(->|\.->)(\|"[^"]*"\|)? [a-z0-9]+$/ { from[NR] = $1; to[NR] = $NF; next }
		/^ *[a-z0-9]+[[({>]/ { id = $1; sub(/[[({>].*/, "", id); decl[id]++; next }
		END {
			if (open != 0) { print "unbalanced subgraphs: " open; bad = 1 }
			for (d in decl) if (decl[d] != 1) { print "declared " decl[d] " times: " d; bad = 1 }
			for (n in from) if (!(from[n] in decl) || !(to[n] in decl)) { print "edge to an undeclared id at line " n; bad = 1 }
			exit bad
		}'\'' out.mmd
'

# ---- plan -------------------------------------------------------------------------

test_expect_success 'plan: the happy path goes through the used workflows, every action of them and every map instance has its line' '
	cairn plan present.yaml >out 2>err &&
	test_cmp /dev/null err &&
	cat >expect <<-\EOF &&
	present (present.yaml): valid, 18 states
	happy path: prep → db → db/start → db/core → db/core/boot → db/core/ok → db/ping → db/check → db/done → health → cache → cache/boot → cache/ok → done → succeeded (exit 0)
	when an action fails (after its retries):
	  prep          → rollback, nothing to undo → failed (exit 1)
	  db/start      → fails db → cleanup (on_failure) → failed (exit 1)
	  db/core/boot  → fails db/core, db → cleanup (on_failure) → failed (exit 1)
	  db/ping/x     → fails db → cleanup (on_failure) → failed (exit 1)
	  db/ping/y     → fails db → cleanup (on_failure) → failed (exit 1)
	  db/check      → db/repair (on_failure) → failed (exit 1)
	  db/repair     not reached on the happy path (on_failure: cleanup, through db)
	  health/auth   → rollback: undo:db/ping/y, undo:db/ping/x, undo:db/core/boot, undo:db/start → failed (exit 1)
	  health/api    → rollback: undo:health/auth, undo:db/ping/y, undo:db/ping/x, undo:db/core/boot, undo:db/start → failed (exit 1)
	  cache/boot    → fails cache → fail, nothing undone → failed (exit 1)
	  cleanup       not reached on the happy path (on_failure: rollback)
	EOF
	test_cmp expect out
'

test_expect_success 'plan --json: the use states a failure goes through, and the same paths' '
	cairn plan --json present.yaml >plan.json &&
	jq -r ".failures[] | [.path, .on_failure, (.through // [] | join(\",\")), (.to // \"-\")] | join(\" \")" plan.json >actual &&
	cat >expect <<-\EOF &&
	prep rollback  rollback
	db/start cleanup db cleanup
	db/core/boot cleanup db/core,db cleanup
	db/ping/x cleanup db cleanup
	db/ping/y cleanup db cleanup
	db/check db/repair  db/repair
	db/repair cleanup db -
	health/auth rollback  rollback
	health/api rollback  rollback
	cache/boot fail cache fail
	cleanup rollback  -
	EOF
	test_cmp expect actual &&
	jq -e ".happy_path | index(\"db/core/boot\") and (index(\"health/auth\") | not)" plan.json
'

test_expect_success 'plan: a map the happy path never enters has one line, STATE/*' '
	write_workflow unreached.yaml <<-\EOF &&
	cairn: 1
	name: unreached
	start: one
	states:
	  one: { do: exec, with: { argv: [/bin/true] }, next: done, on_failure: sweep }
	  sweep:
	    map: { items: [a, b], do: exec, with: { argv: [/bin/true] } }
	    next: failed
	  done: { succeed: true }
	  failed: { fail: true }
	EOF
	cairn plan unreached.yaml >out &&
	test_grep -x "  sweep/\*  not reached on the happy path (on_failure: rollback)" out &&
	test_grep -x "  one      → sweep (on_failure) → failed (exit 1)" out
'

# ---- show and report ------------------------------------------------------------

# table RUN: the state, kind and outcome columns of cairn show's table, the
# indentation and padding kept, cut after the outcome (the columns after
# it hold timings).
table() {
	cairn show "$1" >shown &&
	sed -n "/^STATE /,/^\$/p" shown |
	awk 'NR == 1 { at = index($0, "OUTCOME"); next }
	     NF { o = substr($0, at); sub(/ .*/, "", o)
	          print substr($0, 1, at - 1) o }'
}

test_expect_success 'run it three ways: it succeeds; a map instance fails and rolls back; the check in db fails db' '
	cairn run present.yaml >out 2>&1 &&
	last_run >ok.id &&
	test_must_fail_with 1 cairn run present.yaml --set bad=api >out 2>&1 &&
	last_run >rb.id &&
	test_must_fail_with 1 cairn run present.yaml --set db_check=false >out 2>&1 &&
	last_run >usefail.id
'

test_expect_success 'show: states of used workflows and map instances are indented under their state' '
	table "$(cat ok.id)" >actual &&
	cat >expect <<-\EOF &&
	prep              do        succeeded
	db                use       succeeded
	  db/start        do        succeeded
	  db/core         use       succeeded
	    db/core/boot  do        succeeded
	    db/core/ok    succeed   passed
	  db/ping         map       passed
	    db/ping/x     instance  succeeded
	    db/ping/y     instance  succeeded
	  db/check        do        succeeded
	  db/done         succeed   passed
	health            map       passed
	  health/auth     instance  succeeded
	  health/api      instance  succeeded
	cache             use       succeeded
	  cache/boot      do        succeeded
	  cache/ok        succeed   passed
	done              succeed   passed
	EOF
	test_cmp expect actual &&
	test_grep -E "^db  +use +succeeded .*\{\"url\":\"db://127.0.0.1:6000\"\}$" shown
'

test_expect_success 'show: a map with a failed instance failed, and undo paths are as deep as what they undo' '
	table "$(cat rb.id)" | sed -n "/^health /,\$p" >actual &&
	cat >expect <<-\EOF &&
	health                 map       failed
	  health/auth          instance  succeeded
	  health/api           instance  failed
	  undo:health/auth     undo      succeeded
	    undo:db/ping/y     undo      succeeded
	    undo:db/ping/x     undo      succeeded
	    undo:db/core/boot  undo      succeeded
	  undo:db/start        undo      succeeded
	EOF
	test_cmp expect actual
'

test_expect_success 'show: a use state whose workflow failed failed' '
	table "$(cat usefail.id)" >actual &&
	cat >expect <<-\EOF &&
	prep              do        succeeded
	db                use       failed
	  db/start        do        succeeded
	  db/core         use       succeeded
	    db/core/boot  do        succeeded
	    db/core/ok    succeed   passed
	  db/ping         map       passed
	    db/ping/x     instance  succeeded
	    db/ping/y     instance  succeeded
	  db/check        do        failed
	  db/repair       do        succeeded
	  db/broken       fail      passed
	cleanup           do        succeeded
	failed            fail      passed
	EOF
	test_cmp expect actual
'

test_expect_success 'report: the chart indents the same paths, undo rows by the path they undo' '
	cairn report --run "$(cat rb.id)" -o report.html >out &&
	sed -n "s/.*<text class=\"label\" x=\"\([0-9]*\)\" y=\"[0-9]*\">\([^<]*\)<\/text>.*/\1 \2/p" report.html >actual &&
	cat >expect <<-\EOF &&
	8 prep
	8 db
	22 db/start
	22 db/core
	36 db/core/boot
	36 db/core/ok
	22 db/ping
	36 db/ping/x
	36 db/ping/y
	22 db/check
	22 db/done
	8 health
	22 health/auth
	22 health/api
	22 undo:health/auth
	36 undo:db/ping/y
	36 undo:db/ping/x
	36 undo:db/core/boot
	22 undo:db/start
	EOF
	test_cmp expect actual &&
	test_grep -E "<g class=\"step failed\"><title>health: failed" report.html &&
	test_grep -E "<g class=\"step succeeded\"><title>db: succeeded" report.html
'

test_done
