#!/bin/bash
# t0018-adapters: cairn adapters is generated from the adapters'
# descriptions, and docs/adapters.md documents every adapter, each of its
# inputs and outputs.
. "$(dirname "$0")/lib.sh"

DOC=$CAIRN_SRCDIR/docs/adapters.md

test_expect_success 'adapters --json: one line per adapter with inputs and outputs' '
	cairn adapters --json >out.json &&
	jq -e -s "length >= 1 and all(.[]; (.name | type == \"string\") and (.inputs | type == \"array\") and (.outputs | type == \"array\"))" out.json &&
	jq -e -s "map(select(.name == \"exec\"))[0] | .idempotent == false and
		([.inputs[].name] == [\"argv\", \"shell\", \"cwd\", \"env\", \"timeout\"]) and
		([.outputs[].name] == [\"exit_code\", \"json\"])" out.json &&
	jq -e -s "[.[] | select(.undo) | .undo.with | type] | length > 3 and all(. == \"object\")" out.json &&
	jq -e -s "map(select(.name == \"process.start\"))[0].undo == {\"do\": \"process.stop\",
		\"with\": {\"pid_file\": \"{{ self.output.pid_file }}\", \"proc_start\": \"{{ self.output.proc_start }}\",
		          \"adopted\": \"{{ self.output.adopted }}\"}}" out.json
'

test_expect_success 'every adapter, input and output is documented in docs/adapters.md' '
	jq -r ".name" out.json | while read -r name; do
		# the section of this adapter: from its heading to the next one
		awk -v h="## $name" "\$0 == h { on = 1; next } /^## / { on = 0 } on" "$DOC" >section &&
		test -s section || { echo "docs/adapters.md has no section ## $name"; exit 1; }
		jq -r --arg n "$name" "select(.name == \$n) | (.inputs[].name, .outputs[].name)" out.json |
		while read -r key; do
			grep -qF "\`$key\`" section ||
			{ echo "docs/adapters.md: ## $name does not mention \`$key\`"; exit 1; }
		done || exit 1
	done
'

test_expect_success 'cairn help adapters lists them; adapters NAME shows one' '
	cairn help adapters >out &&
	test_grep "^exec: run a command$" out &&
	cairn adapters exec >one &&
	test_grep "^  inputs:$" one &&
	test_grep "^    argv  *list of strings  *optional$" one &&
	cairn help adapters exec --json >j &&
	cairn adapters exec --json >j2 &&
	test_cmp j2 j &&
	jq -e ".name == \"exec\"" j >/dev/null
'

test_expect_success 'an unknown adapter name: exit 2, one line with the list' '
	test_must_fail_with 2 cairn adapters nope 2>err &&
	test $(wc -l <err) = 1 &&
	test_grep "no adapter '\''nope'\'' (hint: adapters are exec" err
'

test_done
