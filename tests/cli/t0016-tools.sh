#!/bin/bash
# t0016-tools: the kubectl, helm and compose adapters. No Kubernetes cluster
# or docker engine can run here, so these tests run against FAKE kubectl,
# helm and docker (tests/cli/fake/tool, first on PATH) that record their
# argv (NUL-separated, one file per call) and print canned output (kubectl
# -o name lines, a helm status JSON). They prove the argv cairn builds, the
# outputs it parses, the undo it runs on rollback, and its errors; not that
# the real tools accept them.
. "$(dirname "$0")/lib.sh"

mkdir bin
for t in kubectl helm docker; do
	cp "$CAIRN_SRCDIR/tests/cli/fake/tool" "bin/$t"
done
PATH=$TRASH/bin:$PATH
FAKE_DIR=$TRASH
export PATH FAKE_DIR

# calls: every recorded call, one line each, arguments separated by '|'.
calls() {
	local f
	for f in calls/*; do
		[ -e "$f" ] || continue
		tr '\0' '|' <"$f"
		echo
	done
}

fresh() { rm -rf calls .cairn helm.rev; }

# outputs STATE: the journaled outputs of STATE in the newest run, as JSON.
outputs() {
	cairn show "$(last_run)" --json | jq -c --arg s "$1" \
		'.states[] | select(.path == $s) | .outputs'
}

write_workflow helm.yaml <<\EOF
cairn: 1
name: helm
params:
  fail: { default: "no" }
start: up
states:
  up:
    do: helm
    with:
      release: web
      chart: ./charts/web
      namespace: "prod ns"
      values: [-odd.yaml, "my values.yaml"]
      set: ["greeting=hello world", "replicas=2"]
      version: 1.2.3
      wait: true
      timeout: 2m
    next: after
  after:
    do: exec
    with: { argv: [test, "{{ params.fail }}", "=", "no"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'helm upgrade: exact argv, revisions parsed' '
	fresh &&
	cairn run helm.yaml >out &&
	calls | sed "s|--values=$TRASH/.cairn/runs/$(last_run)/up.helm-set.json|--values=SETFILE|" >actual &&
	cat >expect <<-\EOF &&
	helm|status|web|--output=json|--namespace=prod ns|
	helm|upgrade|web|./charts/web|--install|--namespace=prod ns|--values=-odd.yaml|--values=my values.yaml|--values=SETFILE|--version=1.2.3|--wait|--timeout=120s|
	helm|status|web|--output=json|--namespace=prod ns|
	EOF
	test_cmp expect actual &&
	outputs up >actual &&
	echo "{\"previous_revision\":0,\"release\":\"web\",\"revision\":1,\"status\":\"deployed\"}" >expect &&
	test_cmp expect actual
'

test_expect_success 'the tools inherit no descriptor but 0, 1 and 2' '
	fresh &&
	rm -f fds-* &&
	# fd 7: one cairn itself inherited without close-on-exec
	cairn run helm.yaml >out 7>extra.txt &&
	ls "$FAKE_DIR"/fds-* >/dev/null &&
	cat "$FAKE_DIR"/fds-* | sort -u | grep -vx "0\|1\|2\|255" >leaked || true &&
	test_cmp /dev/null leaked
'

test_expect_success 'helm upgrade: set items go to a 0600 values file, never into argv' '
	fresh && rm -f helm-set.copy helm-set.mode &&
	sed "s/set: \[.*\]/set: [\"greeting=hello world\", \"replicas=2\", \"db.password=hunter2\", \"db.tls=true\"]/" helm.yaml >helm-set.yaml &&
	cairn run helm-set.yaml >out &&
	! grep -r hunter2 calls &&
	echo "{\"greeting\":\"hello world\",\"replicas\":2,\"db\":{\"password\":\"hunter2\",\"tls\":true}}" >expect &&
	jq -c . helm-set.copy >actual &&
	test_cmp expect actual &&
	echo 600 >expect && test_cmp expect helm-set.mode &&
	test_path_is_missing ".cairn/runs/$(last_run)/up.helm-set.json"
'

test_expect_success 'helm upgrade of an existing release: previous_revision' '
	fresh && echo 4 >helm.rev &&
	cairn run helm.yaml >out &&
	outputs up >actual &&
	echo "{\"previous_revision\":4,\"release\":\"web\",\"revision\":5,\"status\":\"deployed\"}" >expect &&
	test_cmp expect actual
'

test_expect_success 'helm: a release starting with - is refused by validate' '
	sed "s/release: web/release: -web/" helm.yaml >bad.yaml &&
	test_must_fail_with 2 cairn validate bad.yaml 2>err &&
	test_grep "input .release. must not start with .-." err
'

test_expect_success 'helm: a failing upgrade names the command, status and stderr' '
	fresh &&
	test_must_fail_with 1 env FAKE_FAIL="helm upgrade" "$CAIRN_BIN" run helm.yaml >out 2>&1 &&
	test_grep "'"'"'helm upgrade'"'"' exited with status 3: reason: boom" out
'

# jansson refuses a string that is not UTF-8: the error and the tail were
# left out of the journal, and the run ended with no reason recorded.
test_expect_success 'helm: stderr that is not UTF-8 still reaches the journal' '
	fresh &&
	test_must_fail_with 1 env FAKE_FAIL="helm upgrade" \
		FAKE_FAIL_BYTES="caf\\351 \\342\\202" "$CAIRN_BIN" run helm.yaml >out 2>&1 &&
	cairn show "$(last_run)" --json >show.json &&
	jq -r ".events[] | select(.kind == \"action.finished\" and .state == \"up\")
		| .payload.error" show.json >actual &&
	echo "'"'"'helm upgrade'"'"' exited with status 3: caf? ??" >expect &&
	test_cmp expect actual &&
	jq -r ".events[] | select(.kind == \"action.finished\" and .state == \"up\")
		| .payload.tail" show.json >tail &&
	test_grep "^caf? ??$" tail &&
	jq -r ".events[] | select(.kind == \"run.finished\") | .payload.error" \
		show.json >run-error &&
	test_grep "state .up. failed: .helm upgrade. exited with status 3: caf? ??" run-error
'

test_expect_success 'helm: a missing tool says so' '
	fresh &&
	test_must_fail_with 1 env PATH=/usr/bin:/bin "$CAIRN_BIN" run helm.yaml >out 2>&1 &&
	test_grep "cannot run .helm.: no such file or directory" out
'

# The revert action: what the default undo of helm runs.
write_workflow helm-undo.yaml <<\EOF
cairn: 1
name: helm-undo
start: up
states:
  up:
    do: helm
    with: { release: web, chart: ./charts/web, namespace: "prod ns" }
    undo:
      do: helm
      with:
        action: revert
        release: "{{ self.input.release }}"
        namespace: "{{ self.input.namespace }}"
        previous_revision: "{{ self.output.previous_revision }}"
    next: after
  after:
    do: exec
    with: { argv: ["false"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'helm revert: uninstall when the release was new' '
	fresh &&
	test_must_fail_with 1 cairn run helm-undo.yaml >out 2>&1 &&
	calls | tail -n 1 >actual &&
	echo "helm|uninstall|web|--namespace=prod ns|" >expect &&
	test_cmp expect actual &&
	test_path_is_missing helm.rev
'

test_expect_success 'helm revert: rollback to the revision before' '
	fresh && echo 7 >helm.rev &&
	test_must_fail_with 1 cairn run helm-undo.yaml >out 2>&1 &&
	calls | tail -n 1 >actual &&
	echo "helm|rollback|web|7|--namespace=prod ns|" >expect &&
	test_cmp expect actual &&
	echo 7 >expect && test_cmp expect helm.rev
'

test_expect_success 'helm: the default undo reverts on rollback' '
	fresh && echo 7 >helm.rev &&
	test_must_fail_with 1 cairn run helm.yaml --set fail=yes >out 2>&1 &&
	calls | tail -n 1 >actual &&
	echo "helm|rollback|web|7|--namespace=prod ns|--wait|" >expect &&
	test_cmp expect actual
'

# A helm upgrade cancelled because a parallel sibling failed: its undo
# sees what it journaled (the revision before), or knows it never began.
write_workflow helm-par.yaml <<\EOF
cairn: 1
name: helm-par
start: both
states:
  both:
    parallel:
      up: { do: helm, with: { release: web, chart: ./charts/web } }
      boom: { do: exec, with: { shell: "sleep 0.5; exit 1" } }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'helm: an upgrade cancelled midway is reverted to the revision before' '
	fresh && echo 7 >helm.rev &&
	test_must_fail_with 1 env FAKE_SLOW="helm upgrade" "$CAIRN_BIN" run helm-par.yaml >out 2>&1 &&
	test_grep "rolled back: both/up" out &&
	calls | tail -n 1 >actual &&
	echo "helm|rollback|web|7|" >expect &&
	test_cmp expect actual
'

test_expect_success 'helm: an upgrade cancelled before it began has nothing to undo' '
	fresh && echo 7 >helm.rev &&
	test_must_fail_with 1 env FAKE_SLOW="helm status" "$CAIRN_BIN" run helm-par.yaml >out 2>&1 &&
	test_grep "rolled back: both/up" out &&
	calls >actual &&
	echo "helm|status|web|--output=json|" >expect &&
	test_cmp expect actual &&
	test "$(outputs undo:both/up | jq -r .did)" = nothing
'

test_expect_success 'helm: an install cancelled before the release existed: revert tolerates not found' '
	fresh &&
	test_must_fail_with 1 env FAKE_SLOW="helm upgrade" "$CAIRN_BIN" run helm-par.yaml >out 2>&1 &&
	test_grep "rolled back: both/up" out &&
	calls | tail -n 1 >actual &&
	echo "helm|uninstall|web|" >expect &&
	test_cmp expect actual &&
	test "$(outputs undo:both/up | jq -r .did)" = nothing
'

write_workflow kube.yaml <<\EOF
cairn: 1
name: kube
params:
  fail: { default: "no" }
start: apply
states:
  apply:
    do: kubectl
    with: { file: "-my manifests.yaml", namespace: prod, context: "kind kind", wait: true, rollout_timeout: 90s }
    next: after
  after:
    do: exec
    with: { argv: [test, "{{ params.fail }}", "=", "no"] }
    next: done
  done: { succeed: true }
EOF
printf '%s\n' deployment.apps/web service/web configmap/web-config "deployment.apps/worker" >kubectl-apply.out

test_expect_success 'kubectl apply: exact argv, resources parsed, rollout status' '
	fresh &&
	cairn run kube.yaml >out &&
	calls >actual &&
	cat >expect <<-\EOF &&
	kubectl|apply|--filename=-my manifests.yaml|--output=name|--namespace=prod|--context=kind kind|
	kubectl|rollout|status|deployment/web|--timeout=90s|--namespace=prod|--context=kind kind|
	kubectl|rollout|status|deployment/worker|--timeout=90s|--namespace=prod|--context=kind kind|
	EOF
	test_cmp expect actual &&
	outputs apply >actual &&
	echo "{\"deployments\":[\"web\",\"worker\"],\"resources\":[\"deployment.apps/web\",\"service/web\",\"configmap/web-config\",\"deployment.apps/worker\"]}" >expect &&
	test_cmp expect actual
'

test_expect_success 'kubectl: file and kustomize together are refused' '
	sed "s/file: /kustomize: k, file: /" kube.yaml >bad.yaml &&
	test_must_fail_with 2 cairn validate bad.yaml 2>err &&
	test_grep "exactly one of .file. and .kustomize." err
'

test_expect_success 'kubectl: a failing rollout status fails the step with its stderr' '
	fresh &&
	test_must_fail_with 1 env FAKE_FAIL="kubectl rollout status" "$CAIRN_BIN" run kube.yaml >out 2>&1 &&
	test_grep "'"'"'kubectl rollout status'"'"' exited with status 3: reason: boom" out
'

test_expect_success 'kubectl: the default undo is rollout undo of each deployment' '
	fresh &&
	test_must_fail_with 1 cairn run kube.yaml --set fail=yes >out 2>&1 &&
	calls | tail -n 2 >actual &&
	cat >expect <<-\EOF &&
	kubectl|rollout|undo|deployment/web|--namespace=prod|--context=kind kind|
	kubectl|rollout|undo|deployment/worker|--namespace=prod|--context=kind kind|
	EOF
	test_cmp expect actual
'

test_expect_success 'kubectl: the undo of an apply without deployments succeeds, doing nothing' '
	fresh &&
	printf "%s\n" service/web configmap/web-config >kubectl-apply.out &&
	test_must_fail_with 1 cairn run kube.yaml --set fail=yes >out 2>&1 &&
	printf "%s\n" deployment.apps/web service/web configmap/web-config "deployment.apps/worker" >kubectl-apply.out &&
	test_grep ! "nothing to run" out &&
	calls >actual &&
	echo "kubectl|apply|--filename=-my manifests.yaml|--output=name|--namespace=prod|--context=kind kind|" >expect &&
	test_cmp expect actual &&
	test_grep "rolled back: apply" out &&
	test_grep "nothing to run" ".cairn/runs/$(last_run)/undo:apply.log"
'

write_workflow compose.yaml <<\EOF
cairn: 1
name: compose
params:
  fail: { default: "no" }
start: up
states:
  up:
    do: compose
    with: { file: "my app/compose.yaml", project: shop, services: [web, "db two"] }
    next: after
  after:
    do: exec
    with: { argv: [test, "{{ params.fail }}", "=", "no"] }
    next: done
  done: { succeed: true }
EOF

test_expect_success 'compose up: exact argv' '
	fresh &&
	cairn run compose.yaml >out &&
	calls >actual &&
	echo "docker|compose|--file=my app/compose.yaml|--project-name=shop|up|--detach|web|db two|" >expect &&
	test_cmp expect actual
'

test_expect_success 'compose: a service starting with - is refused' '
	sed "s/services: \[web/services: [-web/" compose.yaml >bad.yaml &&
	test_must_fail_with 2 cairn validate bad.yaml 2>err &&
	test_grep "input .services. must not have an item starting with .-." err
'

test_expect_success 'compose: the default undo is down' '
	fresh &&
	test_must_fail_with 1 cairn run compose.yaml --set fail=yes >out 2>&1 &&
	calls | tail -n 1 >actual &&
	echo "docker|compose|--file=my app/compose.yaml|--project-name=shop|down|" >expect &&
	test_cmp expect actual
'

test_done
