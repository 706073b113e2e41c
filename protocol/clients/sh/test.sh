#!/bin/sh
# Tests of clauth.sh against the real binary.
# Run: CLAUTH_HELPER_BIN=/path/to/clauth-helper sh test.sh   (or dash test.sh)
set -u

here=$(cd "$(dirname "$0")" && pwd)
fixtures=$(cd "$here/../../../fixtures" && pwd)
# Fail, not skip: a suite that silently tests nothing would pass in CI.
if [ -z "${CLAUTH_HELPER_BIN-}" ] || [ ! -x "$CLAUTH_HELPER_BIN" ]; then
	echo "set CLAUTH_HELPER_BIN to the clauth-helper binary (e.g. target/debug/clauth-helper)" >&2
	echo "sh: 0 passed, 1 failed"
	exit 1
fi
. "$here/clauth.sh"

passed=0
failed=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

ok() {
	passed=$((passed + 1))
	echo "ok - $1"
}
not_ok() {
	failed=$((failed + 1))
	echo "not ok - $1"
}
# check DESCRIPTION COMMAND...: one assertion.
check() {
	_desc=$1
	shift
	if "$@"; then ok "$_desc"; else not_ok "$_desc"; fi
}
no_token() {
	! grep -qs 'sk-ant-' "$@"
}
runtime_exists() {
	[ -d "$CLAUTH_HOME/runtimes/work" ]
}
runtime_gone() {
	[ ! -e "$CLAUTH_HOME/runtimes/work" ]
}
canonical_is() {
	cmp -s "$fixtures/credentials/$1.json" "$CLAUTH_HOME/profiles/work/credentials.json"
}
# Writes the way Claude Code does: a temp sibling renamed over the path.
write_by_rename() {
	cp "$1" "$2.tmp-test" && mv -f "$2.tmp-test" "$2"
}
status_json() {
	printf '{}\n' | "$CLAUTH_HELPER_BIN" status
}
# inherit: exports what a parent environment may hold: the variables that would override the
# profile's account, a CLAUDE_CONFIG_DIR of its own, and one the helper has no say over.
inherit() {
	ANTHROPIC_API_KEY=not-a-real-key
	ANTHROPIC_AUTH_TOKEN=not-a-real-token
	CLAUDE_CODE_OAUTH_TOKEN=not-a-real-oauth-token
	ANTHROPIC_BASE_URL=https://inherited.invalid
	CLAUDE_CONFIG_DIR=/inherited/config
	CLAUTH_TEST_KEPT=kept
	export ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN CLAUDE_CODE_OAUTH_TOKEN ANTHROPIC_BASE_URL \
		CLAUDE_CONFIG_DIR CLAUTH_TEST_KEPT
}
uninherit() {
	unset ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN CLAUDE_CODE_OAUTH_TOKEN ANTHROPIC_BASE_URL \
		CLAUDE_CONFIG_DIR CLAUTH_TEST_KEPT CLAUTH_TEST_GONE CLAUTH_TEST_SET
}
# fake_helper ACQUIRE_RESPONSE: a helper that answers acquire with ACQUIRE_RESPONSE and release
# with ok, and logs the verbs it was called with in $_dir/calls; its path is in $fake.
fake_helper() {
	fake=$_dir/fake-helper
	printf '%s\n' "$1" >"$_dir/acquire.json"
	cat >"$fake" <<FAKE
#!/bin/sh
cat >/dev/null
echo "\$1" >>"$_dir/calls"
case \$1 in
acquire) cat "$_dir/acquire.json" ;;
release) echo '{"protocol":1,"ok":true,"session":"s-1"}' ;;
*) exit 1 ;;
esac
FAKE
	chmod 755 "$fake"
}

# fresh [STORE_NAME]: a claude home copied from the fixtures, an empty store, a profile `work`.
# A clean environment, so a developer's own tokens or CLAUTH_* never leak in.
fresh() {
	_dir=$(mktemp -d "$scratch/t.XXXXXX")
	cp -R "$fixtures/home" "$_dir/home"
	HOME=$_dir/home
	CLAUTH_HOME=$_dir/${1:-store}
	# A proxy on a loopback port nothing listens on: no request of the helper (its usage
	# endpoint's) can leave the machine.
	HTTPS_PROXY=http://127.0.0.1:9
	export HOME CLAUTH_HOME HTTPS_PROXY
	unset CLAUTH_SESSION CLAUDE_CONFIG_DIR CLAUTH_ERROR CLAUTH_LINK_MODE CLAUTH_LOCK_TIMEOUT_MS
	"$CLAUTH_HELPER_BIN" profile add work --credentials - <"$fixtures/credentials/work.json" \
		>"$_dir/add.out" 2>&1 || {
		echo "profile add failed" >&2
		exit 1
	}
	no_token "$_dir/add.out" || exit 1
	out=$_dir/out
	err=$_dir/err
}

echo "# acquire"
fresh
inherit
clauth_acquire work >"$out" 2>"$err"
check "acquire succeeds" [ $? -eq 0 ]
check "acquire prints nothing" eval '[ ! -s "$out" ] && [ ! -s "$err" ]'
case ${CLAUTH_SESSION-} in s-*) ok "CLAUTH_SESSION is set" ;; *) not_ok "CLAUTH_SESSION is set" ;; esac
check "CLAUDE_CONFIG_DIR is the runtime" [ "${CLAUDE_CONFIG_DIR-}" = "$CLAUTH_HOME/runtimes/work/config" ]
check "the runtime exists" runtime_exists
check "a child sees CLAUDE_CONFIG_DIR and the credentials" \
	sh -c 'grep -q "\"subscriptionType\": *\"team\"" "$CLAUDE_CONFIG_DIR/.credentials.json"'
# The profile does not set ANTHROPIC_BASE_URL, so the response lists it with the three tokens.
check "a child sees none of the variables env_remove lists" \
	sh -c 'for v in ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN CLAUDE_CODE_OAUTH_TOKEN ANTHROPIC_BASE_URL; do
		env | grep -q "^$v=" && exit 1
	done; exit 0'
check "a child sees the variables env_remove does not list" \
	sh -c '[ "${CLAUTH_TEST_KEPT-}" = kept ]'
check "the session is owned by this shell" eval 'status_json | grep -q "\"owner_pid\":$$,"'

echo "# tick"
write_by_rename "$fixtures/credentials/work-refreshed.json" "$CLAUDE_CONFIG_DIR/.credentials.json"
clauth_tick >"$out" 2>"$err"
check "tick succeeds" [ $? -eq 0 ]
check "tick saved the refreshed credentials to the profile" canonical_is work-refreshed

echo "# release"
clauth_release >"$out" 2>"$err"
check "release succeeds" [ $? -eq 0 ]
check "release removes the runtime" runtime_gone
check "release unsets CLAUTH_SESSION and CLAUDE_CONFIG_DIR" \
	eval '[ -z "${CLAUTH_SESSION+set}" ] && [ -z "${CLAUDE_CONFIG_DIR+set}" ]'
clauth_release
check "release without a session does nothing" [ $? -eq 0 ]
check "tick without a session fails" eval '! clauth_tick 2>/dev/null'

echo "# release saves what tick did not"
fresh
clauth_acquire work fake
check "acquire with a link mode" [ ! -h "$CLAUDE_CONFIG_DIR/.credentials.json" ]
write_by_rename "$fixtures/credentials/work-refreshed.json" "$CLAUDE_CONFIG_DIR/.credentials.json"
clauth_release
check "release saved the refreshed credentials" canonical_is work-refreshed
check "the fake runtime is removed" runtime_gone

echo "# trap"
fresh
(
	clauth_acquire work || exit 99
	clauth_trap
	[ -d "$CLAUDE_CONFIG_DIR" ] || exit 98
	exit 3
)
check "the subshell kept its exit status" [ $? -eq 3 ]
check "the trap released when the subshell exited" runtime_gone
check "no live session is left" eval 'status_json | grep -q "\"sessions\":\[\]"'

fresh
(
	clauth_acquire work || exit 99
	clauth_trap
	: >"$out.ready"
	while :; do sleep 1; done
) &
pid=$!
i=0
while [ ! -e "$out.ready" ] && [ $i -lt 100 ]; do
	sleep 0.1 2>/dev/null || sleep 1
	i=$((i + 1))
done
check "the subshell acquired" runtime_exists
kill -TERM "$pid"
wait "$pid"
check "TERM ends the subshell with status 143" [ $? -eq 143 ]
check "the trap released on TERM" runtime_gone

echo "# the acquire response is applied as sent"
fresh
"$CLAUTH_HELPER_BIN" profile add gateway --credentials - \
	--env ANTHROPIC_BASE_URL=https://gateway.invalid <"$fixtures/credentials/personal.json" \
	>"$_dir/add.out" 2>&1
check "profile add gateway succeeds" [ $? -eq 0 ]
inherit
clauth_acquire gateway 2>"$err"
check "acquire gateway succeeds" [ $? -eq 0 ]
# The profile sets ANTHROPIC_BASE_URL, so the response does not list it and it is left alone.
check "a child sees the inherited ANTHROPIC_BASE_URL, which env_remove does not list" \
	sh -c '[ "${ANTHROPIC_BASE_URL-}" = https://inherited.invalid ]'
check "a child sees none of the tokens env_remove lists" \
	sh -c '! env | grep -q -e ^ANTHROPIC_API_KEY= -e ^ANTHROPIC_AUTH_TOKEN= -e ^CLAUDE_CODE_OAUTH_TOKEN='
check "a child sees the gateway runtime as CLAUDE_CONFIG_DIR" \
	sh -c '[ "$CLAUDE_CONFIG_DIR" = "$CLAUTH_HOME/runtimes/gateway/config" ]'
clauth_release
uninherit

fresh
# Not a fixed list: names no helper sends today are removed and set just the same.
fake_helper '{"protocol":1,"ok":true,"session":"s-1","profile":"work","config_dir":"/runtime/config","link_mode":"fake","env":{"CLAUDE_CONFIG_DIR":"/runtime/config","CLAUTH_TEST_SET":"a \"b\" \\c"},"env_remove":["CLAUTH_TEST_GONE","CLAUTH_TEST_NEVER_SET"]}'
inherit
CLAUTH_TEST_GONE=gone
export CLAUTH_TEST_GONE
real_bin=$CLAUTH_HELPER_BIN
CLAUTH_HELPER_BIN=$fake
clauth_acquire work 2>"$err"
check "acquire through a helper with other names succeeds" [ $? -eq 0 ]
check "a child does not see the variable env_remove lists" \
	sh -c '[ -z "${CLAUTH_TEST_GONE+set}" ]'
check "a child sees every variable of env" \
	sh -c '[ "$CLAUTH_TEST_SET" = "a \"b\" \\c" ] && [ "$CLAUDE_CONFIG_DIR" = /runtime/config ]'
check "a child sees the variables this response does not list" \
	sh -c '[ "$ANTHROPIC_API_KEY" = not-a-real-key ] && [ "$CLAUTH_TEST_KEPT" = kept ]'
clauth_release
check "release unsets what the acquire exported" \
	eval '[ -z "${CLAUTH_TEST_SET+set}" ] && [ -z "${CLAUDE_CONFIG_DIR+set}" ] && [ -z "${CLAUTH_SESSION+set}" ]'
CLAUTH_HELPER_BIN=$real_bin
uninherit

fresh
fake_helper '{"protocol":1,"ok":true,"session":"s-1","profile":"work","config_dir":"/runtime/config","link_mode":"fake","env":{"CLAUDE_CONFIG_DIR":"/runtime/config"}}'
inherit
CLAUTH_HELPER_BIN=$fake
clauth_acquire work 2>"$err"
check "a response without env_remove fails" [ $? -ne 0 ]
check "with helper_failed" [ "${CLAUTH_ERROR-}" = helper_failed ]
check "and the session it acquired is released" \
	[ "$(tr '\n' ' ' <"$_dir/calls")" = "acquire release " ]
check "and nothing is changed or set" \
	eval '[ "$ANTHROPIC_API_KEY" = not-a-real-key ] && [ "$CLAUDE_CONFIG_DIR" = /inherited/config ] && [ -z "${CLAUTH_SESSION+set}" ]'
CLAUTH_HELPER_BIN=$real_bin
uninherit

echo "# pick"
fresh
# A login whose usage needs no request (its access token has expired), and one without a login.
sed 's/"expiresAt": [0-9]*/"expiresAt": 1000/; s/WORKACCESS1/SHEXPIREDACCESS/; s/WORKREFRESH1/SHEXPIREDREFRESH/' \
	"$fixtures/credentials/work.json" >"$_dir/expired.json"
"$CLAUTH_HELPER_BIN" profile add expired --credentials - <"$_dir/expired.json" >"$_dir/add.out" 2>&1
"$CLAUTH_HELPER_BIN" profile add nologin >"$_dir/add.out" 2>&1
clauth_pick -a expired,nologin >"$out" 2>"$err"
check "pick among two succeeds" [ $? -eq 0 ]
check "CLAUTH_PROFILE names the choice" [ "${CLAUTH_PROFILE-}" = expired ]
check "CLAUDE_CONFIG_DIR is the chosen runtime" [ "${CLAUDE_CONFIG_DIR-}" = "$CLAUTH_HOME/runtimes/expired/config" ]
clauth_release
check "release unsets CLAUTH_PROFILE" [ -z "${CLAUTH_PROFILE+set}" ]
clauth_pick -a nologin fake >"$out" 2>"$err"
check "pick with no login to choose fails" [ $? -ne 0 ]
check "with no_headroom" [ "${CLAUTH_ERROR-}" = no_headroom ]
check "and no reset time known" [ -z "${CLAUTH_RESETS_AT-}" ]
fake_helper '{"protocol":1,"ok":false,"error":{"code":"no_headroom","message":"m","retryable":true,"resets_at":"2030-01-01T01:00:00Z"}}'
real_bin=$CLAUTH_HELPER_BIN
CLAUTH_HELPER_BIN=$fake
clauth_pick 2>"$err"
check "no_headroom is returned at once, not retried" [ "$(tr '\n' ' ' <"$_dir/calls")" = "acquire " ]
check "CLAUTH_RESETS_AT is the earliest reset" [ "${CLAUTH_RESETS_AT-}" = 2030-01-01T01:00:00Z ]
CLAUTH_HELPER_BIN=$real_bin
clauth_pick -a expired -m 10 2>"$err"
check "an unknown usage does not meet a minimum" [ "${CLAUTH_ERROR-}" = no_headroom ]
clauth_pick -m lots 2>"$err"
check "a minimum that is not a number is refused" [ "${CLAUTH_ERROR-}" = invalid_request ]
check "no session is set" [ -z "${CLAUTH_SESSION+set}" ]

echo "# errors"
fresh
clauth_acquire nope >"$out" 2>"$err"
check "an unknown profile fails" [ $? -ne 0 ]
check "CLAUTH_ERROR is profile_not_found" [ "${CLAUTH_ERROR-}" = profile_not_found ]
check "stderr names the code" grep -q '^clauth: profile_not_found: ' "$err"
check "nothing on stdout" [ ! -s "$out" ]
check "no session is set" [ -z "${CLAUTH_SESSION+set}" ]
clauth_tick s-000000000000000000000000 2>"$err"
check "an unknown session gives session_not_found" [ "$CLAUTH_ERROR" = session_not_found ]
clauth_acquire 'bad"name\' 2>"$err"
check "a name that needs JSON escapes gives invalid_profile_name" [ "$CLAUTH_ERROR" = invalid_profile_name ]
(
	CLAUTH_HELPER_BIN=$scratch/no-such-helper
	clauth_acquire work 2>"$err"
	[ "$CLAUTH_ERROR" = helper_not_found ]
)
check "a missing binary gives helper_not_found" [ $? -eq 0 ]

echo "# JSON strings"
fresh 'st"o\re'
clauth_acquire work 2>"$err"
check "a config dir with a quote and a backslash is decoded" \
	[ "${CLAUDE_CONFIG_DIR-}" = "$CLAUTH_HOME/runtimes/work/config" ]
check "and exists" [ -d "${CLAUDE_CONFIG_DIR-/nonexistent}" ]
clauth_release

echo "# lock_timeout"
if command -v flock >/dev/null 2>&1; then
	fresh
	CLAUTH_LOCK_TIMEOUT_MS=50
	export CLAUTH_LOCK_TIMEOUT_MS
	# Hold the state lock the way another clauth-helper would, for about a second.
	flock "$CLAUTH_HOME/state.lock" sleep 1 &
	holder=$!
	sleep 0.2 2>/dev/null || :
	(CLAUTH_RETRIES=0 clauth_tick s-000000000000000000000000 2>"$err")
	check "a held lock gives lock_timeout" grep -q '^clauth: lock_timeout: ' "$err"
	clauth_acquire work 2>"$err"
	check "acquire retries lock_timeout until the lock is free" [ $? -eq 0 ]
	wait "$holder"
	clauth_release
	unset CLAUTH_LOCK_TIMEOUT_MS
else
	echo "# skipped: flock(1) is not installed"
fi

check "no output held a token" no_token "$scratch"/t.*/out "$scratch"/t.*/err

echo "sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
