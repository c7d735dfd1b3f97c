#!/bin/bash
# t0027-k8s-example: examples/pyairtable-k8s, the PyAirtable deploy for
# minikube with Helm and kubectl. NO KUBERNETES CLUSTER RUNS HERE (no
# minikube, no helm; no image could be pulled), so this proves what can be
# proved without one: the workflow and its layer validate; dot accepts its
# graph; kubectl (when installed) builds its kustomizations; its
# simulation goes through the phases in order, and failed at a migration,
# at a service of the second layer or at the switch, plans the undo of
# every Helm release in reverse order; and runs against the fake kubectl
# and helm of tests/cli/fake (which record their argv and print canned
# output) make exactly the calls expected, in order: a first deploy, a
# re-deploy that fails in the second layer and rolls back (helm rollback
# for what existed, helm uninstall for what it installed, the namespace
# kept), and a first deploy that fails at its migration (the namespace
# deleted). Not proved: that a cluster accepts the charts and the values
# (no helm renders them here), or that the images exist.
. "$(dirname "$0")/lib.sh"

command -v jq >/dev/null 2>&1 || test_skip_all 'jq is not installed'
command -v flock >/dev/null 2>&1 || test_skip_all 'flock is not installed (util-linux)'
: "${PYAIRTABLE_SERVICE_BIN:=${CAIRN_BUILDDIR:-$CAIRN_SRCDIR/build}/examples/pyairtable-local/service/pyairtable-service}"
[ -x "$PYAIRTABLE_SERVICE_BIN" ] ||
	_cairn_test_bail "no pyairtable-service at $PYAIRTABLE_SERVICE_BIN (build first)"

EX=$CAIRN_SRCDIR/examples/pyairtable-k8s
# The example runs from its folder (its paths are relative): a copy here.
cp -R "$EX" "$TRASH/k8s" || _cairn_test_bail "cannot copy $EX"
rm -rf "$TRASH/k8s/.cairn" "$TRASH"/k8s/k8s/secrets/*/pyairtable.env

# ---- the fake tools ---------------------------------------------------------
# tests/cli/fake/tool records each call (argv, NUL-separated, in
# $FAKE_DIR/calls) and keeps one helm revision for all releases. These
# wrappers run it one call at a time (a layer's helm tests run at once),
# give each release of each namespace its own revision, and make kubectl
# remember which namespaces exist, so that a re-deploy finds its own.
mkdir bin fake
for t in kubectl helm; do
	cp "$CAIRN_SRCDIR/tests/cli/fake/tool" "fake/$t"
done
cat >bin/helm <<\EOF
#!/bin/bash
d=${FAKE_DIR:?}
exec 9>"$d/lock"
flock 9
ns=
for a in "$@"; do case $a in --namespace=*) ns=${a#--namespace=} ;; esac; done
rev=$d/revs/$ns.${2:-}
mkdir -p "$d/revs"
rm -f "$d/helm.rev"
if [ -e "$rev" ]; then cp "$rev" "$d/helm.rev"; fi
rc=0
"$d/fake/helm" "$@" 9>&- || rc=$?
if [ -e "$d/helm.rev" ]; then mv "$d/helm.rev" "$rev"; else rm -f "$rev"; fi
exit $rc
EOF
cat >bin/kubectl <<\EOF
#!/bin/bash
d=${FAKE_DIR:?}
exec 9>"$d/lock"
flock 9
mkdir -p "$d/namespaces"
case " $* " in
  *" --kustomize=k8s/migrations "*) echo configmap/pyairtable-migrations >"$d/kubectl-apply.out" ;;
  *" --kustomize=k8s/secrets/"*) echo secret/pyairtable-secrets >"$d/kubectl-apply.out" ;;
esac
"$d/fake/kubectl" "$@" 9>&- || exit
case "$1 ${2:-}" in
  "create namespace")
    if [ -e "$d/namespaces/$3" ]; then
      echo "Error from server (AlreadyExists): namespaces \"$3\" already exists" >&2
      exit 1
    fi
    touch "$d/namespaces/$3" ;;
  "get namespace")
    [ -e "$d/namespaces/$3" ] || { echo "Error from server (NotFound)" >&2; exit 1; } ;;
  "delete namespace") rm -f "$d/namespaces/$3" ;;
esac
EOF
chmod +x bin/helm bin/kubectl

# calls: every recorded call, one line each, arguments separated by '|',
# with the values file cairn writes for `set` shown as SETFILE, and each
# run of a layer's health tests (started together) sorted by name.
calls() {
	local f
	for f in "$TRASH"/calls/*; do
		[ -e "$f" ] || continue
		tr '\0' '|' <"$f"
		echo
	done | sed 's#--values=[^|]*\.helm-set\.json|#--values=SETFILE|#' |
		awk -v OFS='\t' '{ h = /-health\|/; if (h != last || !h) g++; last = h;
			print g, (h ? 0 : NR), $0 }' |
		sort -t "$(printf '\t')" -k1,1n -k2,2n -k3,3 | cut -f3-
}

# helm_upgrade NS RELEASE CHART TIMEOUT_S VALUES: the three calls of the
# helm adapter's upgrade; VALUES is its --values arguments, '|'-terminated.
helm_upgrade() {
	local k="--namespace=$1|--kube-context=minikube|"
	echo "helm|status|$2|--output=json|$k"
	echo "helm|upgrade|$2|$3|--install|$k$5--wait|--timeout=$4s|"
	echo "helm|status|$2|--output=json|$k"
}
# service NS NAME COLOUR: the upgrade of one service of a layer
service() {
	helm_upgrade "$1" "$2-$3" ./charts/pyairtable-service 300 \
		"--values=values/services.yaml|--values=values/${1#pyairtable-}.yaml|--values=SETFILE|"
}
# health NS NAME COLOUR: its health test
health() {
	echo "helm|test|$2-$3|--namespace=$1|--kube-context=minikube|--filter=name=$2-$3-health|--timeout=2m|"
}
# secret_to_migrations NS ENV: the calls from the Secret to the ConfigMap
# of the migrations, the same in every deploy
secret_to_migrations() {
	echo "kubectl|apply|--kustomize=k8s/secrets/$2|--output=name|--namespace=$1|--context=minikube|"
	helm_upgrade "$1" pyairtable-postgres bitnami/postgresql 600 "--values=values/postgres.yaml|--values=SETFILE|"
	helm_upgrade "$1" pyairtable-redis bitnami/redis 600 "--values=values/redis.yaml|"
	echo "kubectl|apply|--kustomize=k8s/migrations|--output=name|--namespace=$1|--context=minikube|"
}
CORE="auth-service user-service api-gateway"
APPLICATION="workspace-service table-service record-service field-service"
FEATURE="file-processing webhook-service plugin-service llm-orchestrator analytics-service"

# The gateway that the 'live' check reaches through the "ingress": the
# example's stand-in service, answering /health as api-gateway 1.0.0.
GW_PID=
trap 'if [ -n "$GW_PID" ]; then kill "$GW_PID" 2>/dev/null; fi; _cairn_test_exit' EXIT
JWT_SECRET=jwt-t0027 "$PYAIRTABLE_SERVICE_BIN" --name api-gateway --port 0 \
	--release 1.0.0 >gateway.out 2>&1 </dev/null &
GW_PID=$!
for _ in $(seq 1 50); do
	grep -q ' listening on 127.0.0.1:' gateway.out 2>/dev/null && break
	sleep 0.1
done
GW_PORT=$(sed -n 's/.* listening on 127.0.0.1:\([0-9]*\)$/\1/p' gateway.out)
[ -n "$GW_PORT" ] || _cairn_test_bail "the stand-in gateway did not start: $(cat gateway.out)"

# fake_run ARGS...: cairn in the example's copy, against the fake tools,
# the 'live' check pointed at the stand-in gateway; its exit status in rc.
fake_run() {
	(
		cd k8s &&
		PATH=$TRASH/bin:$PATH FAKE_DIR=$TRASH "$CAIRN_BIN" run deploy.yaml \
			--set "ingress=http://127.0.0.1:$GW_PORT" "$@"
	) >run.out 2>&1 && echo 0 >rc || echo $? >rc
}

# fake_promote ENV: as fake_run, through cairn promote (staging and prod
# are gated: cairn run refuses them).
fake_promote() {
	(
		cd k8s &&
		PATH=$TRASH/bin:$PATH FAKE_DIR=$TRASH "$CAIRN_BIN" promote deploy.yaml \
			--to "$1" --set "ingress=http://127.0.0.1:$GW_PORT"
	) >run.out 2>&1 && echo 0 >rc || echo $? >rc
}

# ---- validate, graph --------------------------------------------------------

test_expect_success 'the workflow and its layer validate' '
	(cd k8s && cairn validate deploy.yaml && cairn validate layer.yaml) >out &&
	cat >expect <<-\EOF &&
	deploy.yaml: ok (workflow '"'"'pyairtable-k8s'"'"', 30 states)
	layer.yaml: ok (workflow '"'"'pyairtable-k8s-layer'"'"', 3 states)
	EOF
	test_cmp expect out
'

if command -v dot >/dev/null 2>&1; then
	test_expect_success 'dot renders its graph to SVG without a warning' '
		(cd k8s && cairn graph deploy.yaml) >k8s.dot &&
		dot -Tsvg k8s.dot >k8s.svg 2>dot-err &&
		test_cmp /dev/null dot-err &&
		test_grep "<svg" k8s.svg &&
		sed "s/&#45;/-/g" k8s.svg >text.svg &&
		for name in namespace secrets postgres redis migrate deploy \
			health validate gate approve switch live \
			"core: use layer.yaml" "application: use layer.yaml" \
			"frontend: use layer.yaml"; do
			test_grep -F ">$name</text>" text.svg || exit 1
		done
	'
else
	test_skip 'dot renders its graph to SVG without a warning' 'graphviz (dot) is not installed'
fi

# kubectl builds a kustomization without a cluster: when it is installed,
# the Secret and the ConfigMap that the workflow applies are built here.
if command -v kubectl >/dev/null 2>&1; then
	test_expect_success 'kubectl kustomize builds the Secret and the migrations ConfigMap' '
		cp -R k8s/k8s kz &&
		for e in dev staging prod; do
			printf "JWT_SECRET=x\n" >kz/secrets/$e/pyairtable.env &&
			kubectl kustomize kz/secrets/$e >secret.yaml &&
			test_grep -x "  name: pyairtable-secrets" secret.yaml &&
			test_grep -x "    pyairtable/environment: $e" secret.yaml &&
			test_grep -x "  JWT_SECRET: eA==" secret.yaml || exit 1
		done &&
		kubectl kustomize kz/migrations >cm.yaml &&
		test_grep -x "  name: pyairtable-migrations" cm.yaml &&
		grep -c "^  00[1-4]_[a-z]*\.\(up\|down\)\.sql: |\$" cm.yaml >n &&
		echo 8 >expect && test_cmp expect n
	'
else
	test_skip 'kubectl kustomize builds the Secret and the migrations ConfigMap' 'kubectl is not installed'
fi

# ---- simulate ---------------------------------------------------------------

# done_paths: the actions a simulation trace (stdin) completed, in order.
done_paths() { sed -n 's/^  ✓ \([^ ]*\) (attempt 1)$/\1/p'; }

test_expect_success 'simulate: the phases in order, each layer deployed then tested' '
	(cd k8s && cairn simulate deploy.yaml --env dev) >trace &&
	test_grep -x "result: succeeded; a real run would exit 0" trace &&
	done_paths <trace >paths &&
	sed -E "s#^(namespace|namespace_exists|secrets|secret)\$#env#;
		s#^(postgres|redis)\$#infra#; s#^(migration_files|migrate)\$#migrations#;
		s#^(core|application|feature|frontend)/.*#\1#" paths | uniq >phases &&
	printf "%s\n" env infra migrations core application feature frontend \
		validate switch live >expect &&
	test_cmp expect phases &&
	{
		printf "%s\n" namespace secrets secret postgres redis migration_files migrate
		for layer in core application feature frontend; do
			case $layer in
			core) s=$CORE ;; application) s=$APPLICATION ;;
			feature) s=$FEATURE ;; frontend) s=frontend ;;
			esac
			for n in $s; do echo "$layer/deploy/$n"; done
			for n in $s; do echo "$layer/health/$n"; done
		done
		printf "%s\n" validate switch live
	} >expect &&
	test_cmp expect paths &&
	test_grep -x "→ switch (default)" trace
'

test_expect_success 'simulate prod: the approval comes between validate and the switch' '
	(cd k8s && cairn simulate deploy.yaml --env prod) >trace &&
	sed -n "/^enter validate/,/^enter switch/p" trace >part &&
	cat >expect <<-\EOF &&
	enter validate
	  ✓ validate (attempt 1)
	→ gate (next)
	enter gate (choice)
	→ approve (when: vars.approve_switch)
	enter approve (approval)
	→ switch (approval (simulated: passes))
	enter switch
	EOF
	test_cmp expect part
'

# undo_lines FILE: from simulate --json, each undo run: its path, then the
# helm action and release, or the command.
undo_lines() {
	jq -r 'select(.kind == "state.entered" and .payload.kind == "undo") |
		"\(.state) " + (.payload.inputs |
			if .argv then (.argv | join(" ")) else "helm \(.action) \(.release)" end)' "$1"
}

# fail_at STATE: the rollback plan line and the undo runs of a simulated
# failure at STATE in dev, in plan and undo.
fail_at() {
	(cd k8s && cairn simulate deploy.yaml --env dev --fail-at "$1") >trace &&
	(cd k8s && cairn simulate deploy.yaml --env dev --fail-at "$1" --json) >trace.json &&
	test_grep -x "result: failed; a real run would exit 1" trace &&
	grep "^↶ rollback plan: " trace >plan &&
	undo_lines trace.json >undo
}

# the expected undo of the infrastructure and the namespace, last in every plan
INFRA_UNDO="undo:migrate helm revert pyairtable-migrations
undo:redis helm revert pyairtable-redis
undo:postgres helm revert pyairtable-postgres
undo:namespace kubectl delete namespace pyairtable-dev --context=minikube --ignore-not-found --wait=true"

# undone LAYER NAME...: the expected undo lines of those services of LAYER
undone() {
	local layer=$1 n
	shift
	for n in "$@"; do echo "undo:$layer/deploy/$n helm revert $n-green"; done
}

test_expect_success 'simulate --fail-at migrate: Redis, PostgreSQL, then the namespace' '
	fail_at migrate &&
	echo "↶ rollback plan: undo:redis, undo:postgres, undo:namespace" >expect &&
	test_cmp expect plan &&
	echo "$INFRA_UNDO" | sed 1d >expect &&
	test_cmp expect undo
'

test_expect_success 'simulate --fail-at a service of the second layer: its layer, then the first, newest first' '
	fail_at application/deploy/table-service &&
	echo "↶ rollback plan: undo:application/deploy/workspace-service, undo:core/deploy/api-gateway, undo:core/deploy/user-service, undo:core/deploy/auth-service, undo:migrate, undo:redis, undo:postgres, undo:namespace" >expect &&
	test_cmp expect plan &&
	{
		undone application workspace-service
		undone core api-gateway user-service auth-service
		echo "$INFRA_UNDO"
	} >expect &&
	test_cmp expect undo &&
	test_grep -x "  ✗ application/deploy/table-service (attempt 1): failed" trace &&
	test_grep ! "record-service" trace
'

test_expect_success 'simulate --fail-at switch: every service of every layer, in reverse' '
	fail_at switch &&
	{
		undone frontend frontend
		undone feature analytics-service llm-orchestrator plugin-service webhook-service file-processing
		undone application field-service record-service table-service workspace-service
		undone core api-gateway user-service auth-service
		echo "$INFRA_UNDO"
	} >expect &&
	test_cmp expect undo &&
	cut -d" " -f1 expect | paste -sd, - | sed "s/,/, /g; s/^/↶ rollback plan: /" >expect.plan &&
	test_cmp expect.plan plan
'

test_expect_success 'simulate: a namespace that was there already is never deleted' '
	(cd k8s && cairn simulate deploy.yaml --env dev --fail-at namespace --fail-at live) >trace &&
	test_grep -x "→ namespace_exists (on_failure)" trace &&
	grep "^↶ rollback plan: " trace >plan &&
	test_grep "^↶ rollback plan: undo:switch, undo:frontend/deploy/frontend, " plan &&
	test_grep ", undo:postgres\$" plan
'

# ---- runs against the fake kubectl and helm ---------------------------------

test_expect_success 'fake run: a first deploy makes these calls, in this order' '
	rm -rf calls &&
	fake_run --env dev &&
	echo 0 >expect && test_cmp expect rc &&
	calls >actual &&
	{
		ns=pyairtable-dev
		echo "kubectl|create|namespace|$ns|--context=minikube|"
		secret_to_migrations $ns dev
		helm_upgrade $ns pyairtable-migrations ./charts/pyairtable-migrations 300 "--values=SETFILE|"
		for layer in "$CORE" "$APPLICATION" "$FEATURE" frontend; do
			for n in $layer; do service $ns $n green; done
			for n in $layer; do health $ns $n green; done | sort
		done
		echo "helm|test|api-gateway-green|--namespace=$ns|--kube-context=minikube|--filter=name=api-gateway-green-smoke|--timeout=3m|"
		helm_upgrade $ns pyairtable-router ./charts/pyairtable-router 120 "--values=SETFILE|"
	} >expect &&
	test_cmp expect actual &&
	echo "{\"live\":\"green\",\"host\":\"dev.pyairtable.local\"}" >expect &&
	jq -c . helm-set.copy >actual &&
	test_cmp expect actual
'

test_expect_success 'fake run: the passwords are in a 0600 file, in no argv and not in the journal' '
	f=k8s/k8s/secrets/dev/pyairtable.env &&
	echo 600 >expect && stat -c %a "$f" >actual && test_cmp expect actual &&
	cut -d= -f1 "$f" >names &&
	printf "%s\n" POSTGRES_PASSWORD POSTGRES_ADMIN_PASSWORD REDIS_PASSWORD JWT_SECRET >expect &&
	test_cmp expect names &&
	cut -d= -f2- "$f" >values &&
	test "$(wc -l <values)" = 4 &&
	while read -r v; do
		test ${#v} -ge 32 &&
		test_must_fail_with 1 grep -rqF -e "$v" calls k8s/.cairn || exit 1
	done <values
'

test_expect_success 'fake run: a re-deploy failing in the second layer rolls back, newest first' '
	rm -rf calls &&
	FAKE_FAIL="helm upgrade table-service-blue" fake_run --env dev --set release=1.1.0 --set colour=blue &&
	echo 1 >expect && test_cmp expect rc &&
	calls >actual &&
	{
		ns=pyairtable-dev
		k="--namespace=$ns|--kube-context=minikube|"
		# the namespace is there: the create fails, the check finds it
		echo "kubectl|create|namespace|$ns|--context=minikube|"
		echo "kubectl|get|namespace|$ns|--context=minikube|--output=name|"
		secret_to_migrations $ns dev
		helm_upgrade $ns pyairtable-migrations ./charts/pyairtable-migrations 300 "--values=SETFILE|"
		for n in $CORE; do service $ns $n blue; done
		for n in $CORE; do health $ns $n blue; done | sort
		service $ns workspace-service blue
		service $ns table-service blue | head -n 2
		# the rollback: what this run installed goes, what it upgraded
		# goes back one revision; the namespace stays
		for n in workspace-service api-gateway user-service auth-service; do
			echo "helm|uninstall|$n-blue|$k"
		done
		for r in pyairtable-migrations pyairtable-redis pyairtable-postgres; do
			echo "helm|rollback|$r|1|$k--wait|"
		done
	} >expect &&
	test_cmp expect actual &&
	test_grep "rolled back: application/deploy/workspace-service, core/deploy/api-gateway, core/deploy/user-service, core/deploy/auth-service, migrate, redis, postgres" run.out &&
	ls revs >actual &&
	for r in $CORE $APPLICATION $FEATURE frontend; do echo "pyairtable-dev.$r-green"; done >expect &&
	printf "%s\n" pyairtable-dev.pyairtable-migrations pyairtable-dev.pyairtable-postgres \
		pyairtable-dev.pyairtable-redis pyairtable-dev.pyairtable-router >>expect &&
	sort -o expect expect &&
	test_cmp expect actual &&
	test_path_is_file namespaces/pyairtable-dev
'

test_expect_success 'fake run: a first deploy failing at its migration deletes its namespace last' '
	rm -rf calls &&
	FAKE_FAIL="helm upgrade pyairtable-migrations" fake_promote staging &&
	echo 1 >expect && test_cmp expect rc &&
	calls >actual &&
	{
		ns=pyairtable-staging
		k="--namespace=$ns|--kube-context=minikube|"
		echo "kubectl|create|namespace|$ns|--context=minikube|"
		secret_to_migrations $ns staging
		helm_upgrade $ns pyairtable-migrations ./charts/pyairtable-migrations 300 "--values=SETFILE|" | head -n 2
		echo "helm|uninstall|pyairtable-redis|$k"
		echo "helm|uninstall|pyairtable-postgres|$k"
		echo "kubectl|delete|namespace|$ns|--context=minikube|--ignore-not-found|--wait=true|"
	} >expect &&
	test_cmp expect actual &&
	test_path_is_missing namespaces/pyairtable-staging &&
	test_path_is_file namespaces/pyairtable-dev
'

test_done
