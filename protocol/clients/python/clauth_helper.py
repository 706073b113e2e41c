"""Python client of the clauth-helper protocol (v1).

Standard library only, Python 3.8+. Every call runs ``clauth-helper <verb>`` once, with one JSON
object on stdin and one on stdout (see protocol/PROTOCOL.md). Requests never go through argv, so
nothing a caller passes can show up in a process listing.

    with Session("work") as s:
        subprocess.run(["claude"], env=s.env)
"""

import json
import os
import subprocess
import threading
import time

__all__ = [
    "PROTOCOL_VERSION",
    "Session",
    "child_env",
    "acquire",
    "tick",
    "release",
    "status",
    "capabilities",
    "ClauthError",
    "InvalidRequest",
    "UnknownVerb",
    "UnsupportedProtocol",
    "InvalidProfileName",
    "ProfileNotFound",
    "ProfileExists",
    "ProfileBusy",
    "InvalidCredentials",
    "ClaudeHomeMissing",
    "SessionNotFound",
    "LinkModeConflict",
    "LockTimeout",
    "UnsafeStore",
    "NoHeadroom",
    "StoreIOError",
    "HelperNotFound",
    "HelperFailed",
    "UnsupportedFeature",
]

PROTOCOL_VERSION = 1
DEFAULT_BINARY = "clauth-helper"

# Retries of a `retryable` failure (lock_timeout, keychain_locked): the helper has already waited
# for the state lock by then, so a few spaced attempts are enough to get past a burst of other
# clauth-helpers. `no_headroom` is retryable too, but only after its `resets_at`: it is raised at
# once, for the caller to decide.
DEFAULT_RETRIES = 3
_FIRST_BACKOFF = 0.2
_NOT_RETRIED_HERE = ("no_headroom",)


class ClauthError(Exception):
    """A failure of the helper (``code`` from the wire) or of talking to it.

    Callers switch on ``code`` (or the subclass), never on ``message``.
    """

    code = "error"

    def __init__(self, code, message, retryable=False, resets_at=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        #: ``no_headroom``: the earliest reset it knows of (RFC 3339), else None.
        self.resets_at = resets_at

    def __str__(self):
        return "{}: {}".format(self.code, self.message)

    def __repr__(self):
        return "{}({!r}, {!r}, retryable={!r})".format(
            type(self).__name__, self.code, self.message, self.retryable
        )

    @staticmethod
    def from_wire(error):
        """The typed error for the ``error`` object of a failure response."""
        if not isinstance(error, dict):
            error = {}
        code = str(error.get("code") or "unknown")
        cls = _ERRORS_BY_CODE.get(code, ClauthError)
        resets_at = error.get("resets_at")
        return cls(
            code,
            str(error.get("message") or ""),
            bool(error.get("retryable")),
            resets_at if isinstance(resets_at, str) else None,
        )


def _error_class(name, code, doc):
    return type(name, (ClauthError,), {"code": code, "__doc__": doc})


# The wire codes of protocol v1.
InvalidRequest = _error_class("InvalidRequest", "invalid_request", "The request was malformed.")
UnknownVerb = _error_class("UnknownVerb", "unknown_verb", "The helper does not know the verb.")
UnsupportedProtocol = _error_class(
    "UnsupportedProtocol", "unsupported_protocol", "The helper does not speak protocol 1."
)
InvalidProfileName = _error_class(
    "InvalidProfileName", "invalid_profile_name", "The profile name is not allowed."
)
ProfileNotFound = _error_class("ProfileNotFound", "profile_not_found", "No such profile.")
ProfileExists = _error_class("ProfileExists", "profile_exists", "The profile already exists.")
ProfileBusy = _error_class("ProfileBusy", "profile_busy", "The profile has live sessions.")
InvalidCredentials = _error_class(
    "InvalidCredentials", "invalid_credentials", "The credentials are not usable."
)
ClaudeHomeMissing = _error_class(
    "ClaudeHomeMissing", "claude_home_missing", "There is no ~/.claude to build a runtime from."
)
SessionNotFound = _error_class(
    "SessionNotFound", "session_not_found", "The session ended or never existed."
)
LinkModeConflict = _error_class(
    "LinkModeConflict", "link_mode_conflict", "The runtime already uses the other link mode."
)
LockTimeout = _error_class(
    "LockTimeout", "lock_timeout", "Another clauth-helper held the state lock too long."
)
UnsafeStore = _error_class("UnsafeStore", "unsafe_store", "The store's permissions are unsafe.")
LoginInUse = _error_class(
    "LoginInUse", "login_in_use", "The login already has a place (the home or another profile)."
)
HomeBusy = _error_class("HomeBusy", "home_busy", "A plain Claude Code is using the claude home.")
HomeMismatch = _error_class(
    "HomeMismatch", "home_mismatch", "The profile's live runtime is for another claude home."
)
KeychainLocked = _error_class(
    "KeychainLocked", "keychain_locked", "The login keychain is locked; unlock it and retry."
)
KeychainFailed = _error_class(
    "KeychainFailed", "keychain_failed", "The Keychain could not be used through `security`."
)
NoHeadroom = _error_class(
    "NoHeadroom",
    "no_headroom",
    "No profile `pick` looked at has headroom; ``resets_at`` says when one may.",
)
StoreIOError = _error_class("StoreIOError", "io", "A file system operation failed.")

# Client-side codes: the helper never sends these.
HelperNotFound = _error_class(
    "HelperNotFound", "helper_not_found", "The clauth-helper binary could not be started."
)
HelperFailed = _error_class(
    "HelperFailed", "helper_failed", "The helper did not answer with a protocol response."
)
UnsupportedFeature = _error_class(
    "UnsupportedFeature", "unsupported_feature", "The helper lacks a feature this client needs."
)

_ERRORS_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        UnknownVerb,
        UnsupportedProtocol,
        InvalidProfileName,
        ProfileNotFound,
        ProfileExists,
        ProfileBusy,
        InvalidCredentials,
        ClaudeHomeMissing,
        SessionNotFound,
        LinkModeConflict,
        LockTimeout,
        UnsafeStore,
        LoginInUse,
        HomeBusy,
        HomeMismatch,
        KeychainLocked,
        KeychainFailed,
        NoHeadroom,
        StoreIOError,
        HelperNotFound,
        HelperFailed,
        UnsupportedFeature,
    )
}


def _stderr_tail(stderr):
    text = stderr.decode("utf-8", "replace").strip()
    return text[-500:] if text else "nothing on stderr"


def _call_once(verb, payload, binary, env, timeout):
    try:
        proc = subprocess.run(
            [binary, verb],
            input=payload,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise HelperNotFound("helper_not_found", "cannot find {!r}".format(binary)) from None
    except PermissionError:
        raise HelperNotFound("helper_not_found", "cannot execute {!r}".format(binary)) from None
    except subprocess.TimeoutExpired:
        raise HelperFailed(
            "helper_failed", "clauth-helper {} did not answer in {} s".format(verb, timeout)
        ) from None

    # Exactly one JSON line is the contract; anything else means the binary is not a v1 helper
    # (or crashed), and its stderr says why.
    line = proc.stdout.decode("utf-8", "replace").strip()
    try:
        response = json.loads(line) if line else None
    except ValueError:
        response = None
    if not isinstance(response, dict) or "ok" not in response:
        raise HelperFailed(
            "helper_failed",
            "clauth-helper {} exited with status {} without a protocol response ({})".format(
                verb, proc.returncode, _stderr_tail(proc.stderr)
            ),
        )
    if response.get("protocol") != PROTOCOL_VERSION:
        raise UnsupportedProtocol(
            "unsupported_protocol",
            "the helper answered in protocol {!r}; this client speaks {}".format(
                response.get("protocol"), PROTOCOL_VERSION
            ),
        )
    if response["ok"] is not True:
        raise ClauthError.from_wire(response.get("error"))
    return response


def _call(verb, request, binary=DEFAULT_BINARY, env=None, retries=DEFAULT_RETRIES, timeout=None):
    """Sends one request; returns the response dict or raises a ClauthError."""
    body = {"protocol": PROTOCOL_VERSION}
    body.update((k, v) for k, v in request.items() if v is not None)
    payload = json.dumps(body).encode("utf-8")
    delay = _FIRST_BACKOFF
    for attempt in range(retries + 1):
        try:
            return _call_once(verb, payload, binary, env, timeout)
        except ClauthError as err:
            # Only `retryable` failures left the store untouched, so only they are safe to repeat.
            if not err.retryable or err.code in _NOT_RETRIED_HERE or attempt == retries:
                raise
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def acquire(profile=None, *, pick=None, owner_pid=None, lease_ms=None, link_mode=None, **kw):
    """Acquires a session of ``profile``, or of the profile the helper picks.

    ``pick`` instead of ``profile`` (a dict, ``{}`` for every profile): the helper chooses the
    profile with the most headroom, ``{"among": [names], "min_headroom": percent}`` narrowing it
    down; the response's ``profile`` names the choice and its ``pick`` what was known of it. None
    good enough raises :class:`NoHeadroom` (with ``resets_at``), never retried here.

    Without ``owner_pid`` or ``lease_ms`` the session lives until released. Keyword arguments
    ``binary``, ``env`` (the helper's environment), ``retries`` and ``timeout`` apply to every
    function of this module.
    """
    if (profile is None) == (pick is None):
        raise ValueError("give either profile or pick")
    request = {
        "profile": profile,
        "pick": pick,
        "owner_pid": owner_pid,
        "lease_ms": lease_ms,
        "link_mode": link_mode,
    }
    return _call("acquire", request, **kw)


def tick(session, **kw):
    """Saves what the session changed (refreshed credentials, new files); renews its lease."""
    return _call("tick", {"session": session}, **kw)


def release(session, **kw):
    """Ends the session (after a final sync); the last one tears the runtime down."""
    return _call("release", {"session": session}, **kw)


def status(profile=None, *, usage=False, **kw):
    """Profiles with their live sessions, runtime and credential expiry (never a token).

    ``usage=True`` adds each profile's usage and limits (``usage`` or ``usage_error``), which
    may ask the usage endpoint; without it no network is used.
    """
    return _call("status", {"profile": profile, "usage": True if usage else None}, **kw)


def capabilities(**kw):
    """Protocol versions, verbs and features of the helper."""
    return _call("capabilities", {}, **kw)


def child_env(acquired, base=None):
    """The environment for a program run in an acquired session, as the acquire response says.

    A copy of ``base`` (default ``os.environ``) without every variable the response lists in
    ``env_remove`` (inherited ones that would override the profile's account), then with every
    variable of its ``env`` set (``CLAUDE_CONFIG_DIR``). Raises :class:`HelperFailed` when the
    response lacks either field, as no protocol 1 helper does.
    """
    remove = acquired.get("env_remove")
    add = acquired.get("env")
    if not (
        isinstance(remove, list)
        and all(isinstance(key, str) for key in remove)
        and isinstance(add, dict)
        and all(isinstance(value, str) for value in add.values())
    ):
        raise HelperFailed(
            "helper_failed",
            "the acquire response lacks env_remove (a list of names) or env (an object of strings)",
        )
    env = dict(os.environ if base is None else base)
    for key in remove:
        env.pop(key, None)
    env.update(add)
    return env


class Session:
    """A session held for the duration of a ``with`` block, ticked in the background.

    ``env`` is the environment for the helper and the base of :attr:`env` (default
    ``os.environ``); :attr:`env` is that base as the acquire response says to change it (see
    :func:`child_env`), ready for ``subprocess``. ``tick_interval=None`` turns the background ticks off; the release at the end
    still saves what the session changed.

    The session names this process as its owner, so it also ends if the process dies without
    leaving the block.

    ``Session(pick={...})`` instead of a profile lets the helper choose (see :func:`acquire`);
    :attr:`profile` is then the chosen one once open, and :attr:`picked` what was known of it.
    """

    def __init__(
        self,
        profile=None,
        *,
        pick=None,
        binary=DEFAULT_BINARY,
        link_mode=None,
        tick_interval=1.0,
        env=None
    ):
        if (profile is None) == (pick is None):
            raise ValueError("give either profile or pick")
        self.profile = profile
        #: With ``pick``: the response's ``pick`` (``headroom``, ``usage``, ``usage_error``).
        self.picked = None
        self._pick = pick
        self.session = None
        self.config_dir = None
        self.link_mode = None
        self.env = None
        #: The response of the last background tick, and the error of the last failed one.
        self.last_tick = None
        self.tick_error = None
        self._requested_link_mode = link_mode
        self._tick_interval = tick_interval
        self._kw = {"binary": binary, "env": None if env is None else dict(env)}
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def open(self):
        """Checks the helper, acquires the session and starts ticking."""
        if self.session is not None:
            raise RuntimeError("this Session is already open")
        caps = capabilities(**self._kw)
        if PROTOCOL_VERSION not in (caps.get("protocol_versions") or []):
            raise UnsupportedProtocol(
                "unsupported_protocol",
                "the helper speaks protocols {!r}; this client needs {}".format(
                    caps.get("protocol_versions"), PROTOCOL_VERSION
                ),
            )
        # An older helper would ignore owner_pid (unknown fields are ignored), and the session
        # would then outlive this process.
        if "owner_pid" not in (caps.get("features") or []):
            raise UnsupportedFeature(
                "unsupported_feature", "the helper does not support owner_pid"
            )
        if self._pick is not None and "pick" not in (caps.get("features") or []):
            raise UnsupportedFeature("unsupported_feature", "the helper does not support pick")
        acquired = acquire(
            None if self._pick is not None else self.profile,
            pick=self._pick,
            owner_pid=os.getpid(),
            link_mode=self._requested_link_mode,
            **self._kw
        )
        try:
            env = child_env(acquired, self._kw["env"])
        except ClauthError:
            # Without an environment to hand out the session is of no use; do not keep it.
            try:
                release(acquired["session"], **self._kw)
            except ClauthError:
                pass
            raise
        self.session = acquired["session"]
        self.profile = acquired["profile"]
        self.picked = acquired.get("pick")
        self.config_dir = acquired["config_dir"]
        self.link_mode = acquired["link_mode"]
        self.env = env
        if self._tick_interval:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._tick_loop, name="clauth-tick-" + str(self.profile), daemon=True
            )
            self._thread.start()
        return self

    def tick(self):
        """Ticks now; returns the response."""
        return tick(self.session, **self._kw)

    def close(self):
        """Stops ticking and releases; returns the release response (None if already ended)."""
        if self.session is None:
            return None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        session, self.session = self.session, None
        try:
            return release(session, **self._kw)
        except SessionNotFound:
            # Released elsewhere (or pruned): the session is already over, which is what we want.
            return None

    def _tick_loop(self):
        while not self._stop.wait(self._tick_interval):
            try:
                self.last_tick = tick(self.session, **self._kw)
                self.tick_error = None
            except SessionNotFound as err:
                self.tick_error = err
                return
            except Exception as err:  # keep ticking: the next attempt may succeed
                self.tick_error = err
