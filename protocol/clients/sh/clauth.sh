# clauth.sh: POSIX sh functions over the clauth-helper protocol (v1). Source it, don't run it:
#
#   . /path/to/clauth.sh
#   clauth_acquire work || exit 1
#   clauth_trap                  # release on EXIT, HUP, INT and TERM
#   claude
#
# Functions: clauth_acquire PROFILE [LINK_MODE], clauth_tick [SESSION], clauth_release [SESSION],
# clauth_trap. They use $CLAUTH_HELPER_BIN, or clauth-helper on PATH. On failure they set
# CLAUTH_ERROR to the protocol's error code, print "clauth: CODE: MESSAGE" to stderr and return
# non-zero. Besides the wire codes, CLAUTH_ERROR may be helper_not_found (the binary could not be
# run) or helper_failed (it gave no protocol response). Names starting with _clauth_ are private.

# Inherited variables that would silently override the profile's account, removed as
# `clauth-helper run` removes them. ANTHROPIC_BASE_URL goes even when the profile sets it: like
# every variable of the profile, its value reaches Claude Code through the runtime's settings.json.
_clauth_scrubbed='ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN CLAUDE_CODE_OAUTH_TOKEN ANTHROPIC_BASE_URL'

# _clauth_json_string VALUE: VALUE as a JSON string literal.
_clauth_json_string() {
	printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# _clauth_field KEY: the string value of "KEY" in the last response, JSON escapes of quote,
# backslash and slash decoded. A response is one line of compact JSON, and inside a JSON string a
# quote is always escaped, so '"KEY":"' only ever matches a real key.
_clauth_field() {
	_clauth_soh=$(printf '\001')
	printf '%s\n' "$_clauth_out" |
		sed -n 's/.*"'"$1"'":"\([^"\\]*\(\\.[^"\\]*\)*\)".*/\1/p' |
		sed 's/\\\\/'"$_clauth_soh"'/g; s/\\"/"/g; s/\\\//\//g; s/'"$_clauth_soh"'/\\/g'
}

# _clauth_call VERB REQUEST: sends one request; the response is left in _clauth_out. Retries a
# retryable failure (lock_timeout) a few times, since the helper has already waited by then.
_clauth_call() {
	_clauth_try=0
	while :; do
		_clauth_out=$(printf '%s\n' "$2" | "${CLAUTH_HELPER_BIN:-clauth-helper}" "$1")
		_clauth_rc=$?
		# Exit 0 exactly when "ok" is true is part of the protocol; checking both guards against
		# a binary that is not a v1 helper.
		case $_clauth_rc:$_clauth_out in
		0:*'"ok":true'*)
			CLAUTH_ERROR=
			return 0
			;;
		*'"retryable":true'*)
			if [ "$_clauth_try" -lt "${CLAUTH_RETRIES:-3}" ]; then
				_clauth_try=$((_clauth_try + 1))
				sleep "$_clauth_try"
				continue
			fi
			;;
		esac
		break
	done
	CLAUTH_ERROR=$(_clauth_field code)
	if [ -n "$CLAUTH_ERROR" ]; then
		_clauth_msg=$(_clauth_field message)
	elif [ -z "$_clauth_out" ] && { [ "$_clauth_rc" -eq 126 ] || [ "$_clauth_rc" -eq 127 ]; }; then
		CLAUTH_ERROR=helper_not_found
		_clauth_msg="cannot run ${CLAUTH_HELPER_BIN:-clauth-helper}"
	else
		CLAUTH_ERROR=helper_failed
		_clauth_msg="clauth-helper $1 exited with status $_clauth_rc without a protocol response"
	fi
	printf 'clauth: %s: %s\n' "$CLAUTH_ERROR" "$_clauth_msg" >&2
	return 1
}

# clauth_acquire PROFILE [LINK_MODE]: acquires a session; sets CLAUTH_SESSION, exports
# CLAUDE_CONFIG_DIR, and unsets the variables that would override the profile's account. The
# session is owned by this shell ($$), so it also ends if the shell dies without releasing it.
clauth_acquire() {
	if [ $# -lt 1 ] || [ -z "$1" ]; then
		CLAUTH_ERROR=invalid_request
		printf 'clauth: %s: %s\n' "$CLAUTH_ERROR" 'usage: clauth_acquire PROFILE [auto|real|fake]' >&2
		return 2
	fi
	_clauth_req="{\"protocol\":1,\"profile\":$(_clauth_json_string "$1"),\"owner_pid\":$$"
	if [ -n "${2-}" ]; then
		_clauth_req="$_clauth_req,\"link_mode\":$(_clauth_json_string "$2")"
	fi
	_clauth_call acquire "$_clauth_req}" || return
	CLAUTH_SESSION=$(_clauth_field session)
	CLAUDE_CONFIG_DIR=$(_clauth_field config_dir)
	export CLAUDE_CONFIG_DIR
	# shellcheck disable=SC2086 # a list of names, split on purpose
	unset $_clauth_scrubbed
}

# clauth_tick [SESSION]: saves what the session changed (refreshed credentials, new files).
# Call it now and then during a long session; release does a final one.
clauth_tick() {
	_clauth_session=${1-${CLAUTH_SESSION-}}
	if [ -z "$_clauth_session" ]; then
		CLAUTH_ERROR=session_not_found
		printf 'clauth: %s: %s\n' "$CLAUTH_ERROR" 'no session; run clauth_acquire first' >&2
		return 1
	fi
	_clauth_call tick "{\"protocol\":1,\"session\":$(_clauth_json_string "$_clauth_session")}"
}

# clauth_release [SESSION]: ends the session (the last one tears the runtime down). Releasing
# the current session unsets CLAUTH_SESSION and CLAUDE_CONFIG_DIR, also when it had already
# ended; with no session it does nothing, so it is safe to call twice.
clauth_release() {
	_clauth_session=${1-${CLAUTH_SESSION-}}
	[ -n "$_clauth_session" ] || return 0
	_clauth_call release "{\"protocol\":1,\"session\":$(_clauth_json_string "$_clauth_session")}"
	_clauth_rc=$?
	if [ "$_clauth_session" = "${CLAUTH_SESSION-}" ] &&
		{ [ "$_clauth_rc" -eq 0 ] || [ "$CLAUTH_ERROR" = session_not_found ]; }; then
		unset CLAUTH_SESSION CLAUDE_CONFIG_DIR
	fi
	return "$_clauth_rc"
}

# clauth_trap: releases the current session when the shell exits or gets HUP, INT or TERM.
# Replaces any traps already set for these. The exit status is kept (128+N after signal N).
clauth_trap() {
	trap '_clauth_status=$?; clauth_release; exit "$_clauth_status"' EXIT
	trap 'clauth_release; trap - EXIT; exit 129' HUP
	trap 'clauth_release; trap - EXIT; exit 130' INT
	trap 'clauth_release; trap - EXIT; exit 143' TERM
}
