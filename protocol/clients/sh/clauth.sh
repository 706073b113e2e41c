# clauth.sh: POSIX sh functions over the clauth-helper protocol (v1). Source it, don't run it:
#
#   . /path/to/clauth.sh
#   clauth_acquire work || exit 1
#   clauth_trap                  # release on EXIT, HUP, INT and TERM
#   claude
#
# Functions: clauth_acquire PROFILE [LINK_MODE], clauth_pick [-a NAME,...] [-m PERCENT]
# [LINK_MODE], clauth_tick [SESSION], clauth_release [SESSION], clauth_trap. They use
# $CLAUTH_HELPER_BIN, or clauth-helper on PATH. On failure they set CLAUTH_ERROR to the
# protocol's error code, print "clauth: CODE: MESSAGE" to stderr and return non-zero. Besides the
# wire codes, CLAUTH_ERROR may be helper_not_found (the binary could not be run) or helper_failed
# (it gave no protocol response). Names starting with _clauth_ are private.

# A JSON string as a basic regular expression: a quote, then characters other than a quote or a
# backslash and escape pairs, then a quote. Anchored at the start of a string token, it ends at
# the token's closing quote.
_clauth_str='"[^"\\]*\(\\.[^"\\]*\)*"'

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

# _clauth_decode TOKEN: the value of the JSON string literal TOKEN. Only the escapes of quote,
# backslash and slash are decoded; a string with any other escape (a control character, \u) is
# refused with status 1, so nothing is ever set to a value other than the one sent.
_clauth_decode() {
	_clauth_s=${1#\"}
	_clauth_s=${_clauth_s%\"}
	case $(printf '%s\n' "$_clauth_s" | sed 's|\\[\\"/]||g') in
	*\\*) return 1 ;;
	esac
	_clauth_soh=$(printf '\001')
	printf '%s\n' "$_clauth_s" |
		sed 's/\\\\/'"$_clauth_soh"'/g; s/\\"/"/g; s/\\\//\//g; s/'"$_clauth_soh"'/\\/g'
}

# _clauth_name VALUE: whether VALUE can name a shell variable.
_clauth_name() {
	case $1 in
	'' | [0-9]* | *[!A-Za-z0-9_]*) return 1 ;;
	esac
}

# _clauth_take: moves the JSON string token at the start of _clauth_rest into _clauth_tok.
_clauth_take() {
	_clauth_tok=$(printf '%s\n' "$_clauth_rest" | sed -n "s/^\($_clauth_str\).*/\1/p")
	[ -n "$_clauth_tok" ] || return 1
	_clauth_rest=${_clauth_rest#"$_clauth_tok"}
}

# _clauth_env_plan: reads "env_remove" and "env" of the acquire response in _clauth_out into
# _clauth_unset (names, space-separated) and _clauth_set (NAME=VALUE lines), changing nothing
# yet. Returns 1 when either field is missing or holds what this parser cannot apply exactly.
_clauth_env_plan() {
	_clauth_unset=
	_clauth_set=
	_clauth_rest=$(printf '%s\n' "$_clauth_out" |
		sed -n "s/.*\"env_remove\":\[\(\($_clauth_str\)\(,$_clauth_str\)*\)\{0,1\}].*/x\1/p")
	[ -n "$_clauth_rest" ] || return 1
	_clauth_rest=${_clauth_rest#x}
	while [ -n "$_clauth_rest" ]; do
		_clauth_take || return 1
		_clauth_k=$(_clauth_decode "$_clauth_tok") && _clauth_name "$_clauth_k" || return 1
		_clauth_unset="$_clauth_unset $_clauth_k"
		_clauth_rest=${_clauth_rest#,}
	done
	_clauth_kv="$_clauth_str:$_clauth_str"
	_clauth_rest=$(printf '%s\n' "$_clauth_out" |
		sed -n "s/.*\"env\":{\(\($_clauth_kv\)\(,$_clauth_kv\)*\)\{0,1\}}.*/x\1/p")
	[ -n "$_clauth_rest" ] || return 1
	_clauth_rest=${_clauth_rest#x}
	while [ -n "$_clauth_rest" ]; do
		_clauth_take || return 1
		_clauth_k=$(_clauth_decode "$_clauth_tok") && _clauth_name "$_clauth_k" || return 1
		_clauth_rest=${_clauth_rest#:}
		_clauth_take || return 1
		_clauth_v=$(_clauth_decode "$_clauth_tok") || return 1
		_clauth_set="$_clauth_set$_clauth_k=$_clauth_v
"
		_clauth_rest=${_clauth_rest#,}
	done
}

# _clauth_call VERB REQUEST: sends one request; the response is left in _clauth_out. Retries a
# retryable failure (lock_timeout, keychain_locked) a few times, since the helper has already
# waited by then; no_headroom is retryable only after its resets_at, so it is returned at once.
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
		*'"code":"no_headroom"'*) ;;
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
	CLAUTH_RESETS_AT=$(_clauth_field resets_at)
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

# clauth_acquire PROFILE [LINK_MODE]: acquires a session, sets CLAUTH_SESSION and CLAUTH_PROFILE,
# and applies the response to the shell's environment: unsets every variable it lists in
# env_remove (inherited ones that would override the profile's account), then exports every
# variable of its env (CLAUDE_CONFIG_DIR). The session is owned by this shell ($$), so it also
# ends if the shell dies without releasing it.
clauth_acquire() {
	if [ $# -lt 1 ] || [ -z "$1" ]; then
		CLAUTH_ERROR=invalid_request
		printf 'clauth: %s: %s\n' "$CLAUTH_ERROR" 'usage: clauth_acquire PROFILE [auto|real|fake]' >&2
		return 2
	fi
	_clauth_acquire_with "\"profile\":$(_clauth_json_string "$1")" "${2-}"
}

# clauth_pick [-a NAME,NAME...] [-m PERCENT] [LINK_MODE]: like clauth_acquire, with the profile
# chosen by the helper: the one with the most headroom (among the NAMEs, with at least PERCENT
# headroom, when given). CLAUTH_PROFILE names the choice. None good enough: CLAUTH_ERROR is
# no_headroom and CLAUTH_RESETS_AT the earliest reset it knows of (RFC 3339), or empty.
clauth_pick() {
	_clauth_pick=
	OPTIND=1
	while getopts a:m: _clauth_opt; do
		case $_clauth_opt in
		a)
			_clauth_among=
			_clauth_rest=$OPTARG,
			while [ -n "$_clauth_rest" ]; do
				_clauth_one=${_clauth_rest%%,*}
				_clauth_rest=${_clauth_rest#*,}
				[ -n "$_clauth_one" ] || continue
				_clauth_among="$_clauth_among${_clauth_among:+,}$(_clauth_json_string "$_clauth_one")"
			done
			_clauth_pick="$_clauth_pick${_clauth_pick:+,}\"among\":[$_clauth_among]"
			;;
		m)
			case $OPTARG in
			'' | *[!0-9.]*)
				CLAUTH_ERROR=invalid_request
				printf 'clauth: %s: %s\n' "$CLAUTH_ERROR" '-m takes a percentage' >&2
				return 2
				;;
			esac
			_clauth_pick="$_clauth_pick${_clauth_pick:+,}\"min_headroom\":$OPTARG"
			;;
		*)
			CLAUTH_ERROR=invalid_request
			printf 'clauth: %s: %s\n' "$CLAUTH_ERROR" \
				'usage: clauth_pick [-a NAME,...] [-m PERCENT] [auto|real|fake]' >&2
			return 2
			;;
		esac
	done
	shift $((OPTIND - 1))
	_clauth_acquire_with "\"pick\":{$_clauth_pick}" "${1-}"
}

# _clauth_acquire_with FIELD [LINK_MODE]: the acquire of clauth_acquire and clauth_pick, FIELD
# being the request's "profile" or "pick".
_clauth_acquire_with() {
	_clauth_req="{\"protocol\":1,$1,\"owner_pid\":$$"
	if [ -n "${2-}" ]; then
		_clauth_req="$_clauth_req,\"link_mode\":$(_clauth_json_string "$2")"
	fi
	_clauth_call acquire "$_clauth_req}" || return
	_clauth_acquired=$(_clauth_field session)
	if ! _clauth_env_plan; then
		# Without an environment to apply the session is of no use; do not keep it.
		_clauth_call release \
			"{\"protocol\":1,\"session\":$(_clauth_json_string "$_clauth_acquired")}" 2>/dev/null
		CLAUTH_ERROR=helper_failed
		printf 'clauth: %s: %s\n' "$CLAUTH_ERROR" \
			'the acquire response lacks an env_remove or env this client can apply' >&2
		return 1
	fi
	CLAUTH_SESSION=$_clauth_acquired
	CLAUTH_PROFILE=$(_clauth_field profile)
	# shellcheck disable=SC2086 # names checked by _clauth_name, split on purpose
	unset $_clauth_unset
	_clauth_env_names=
	while IFS= read -r _clauth_line; do
		[ -n "$_clauth_line" ] || continue
		export "$_clauth_line"
		_clauth_env_names="$_clauth_env_names ${_clauth_line%%=*}"
	done <<EOF
$_clauth_set
EOF
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
# the current session unsets CLAUTH_SESSION and the variables its acquire exported
# (CLAUDE_CONFIG_DIR), also when it had already ended; with no session it does nothing, so it is
# safe to call twice. Variables the acquire unset stay unset.
clauth_release() {
	_clauth_session=${1-${CLAUTH_SESSION-}}
	[ -n "$_clauth_session" ] || return 0
	_clauth_call release "{\"protocol\":1,\"session\":$(_clauth_json_string "$_clauth_session")}"
	_clauth_rc=$?
	if [ "$_clauth_session" = "${CLAUTH_SESSION-}" ] &&
		{ [ "$_clauth_rc" -eq 0 ] || [ "$CLAUTH_ERROR" = session_not_found ]; }; then
		# shellcheck disable=SC2086 # names checked by _clauth_name, split on purpose
		unset CLAUTH_SESSION CLAUTH_PROFILE ${_clauth_env_names-}
		_clauth_env_names=
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
