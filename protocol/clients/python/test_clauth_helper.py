"""Tests of the Python client against the real binary.

Run: CLAUTH_HELPER_BIN=/path/to/clauth-helper python3 -m unittest -v
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

# Keep the client directory free of __pycache__ when run by hand.
sys.dont_write_bytecode = True

import clauth_helper as ch  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "fixtures"
BIN = os.environ.get("CLAUTH_HELPER_BIN")


def setUpModule():
    # Fail, not skip: a suite that silently tests nothing would pass in CI.
    if not BIN or not os.access(BIN, os.X_OK):
        raise RuntimeError(
            "set CLAUTH_HELPER_BIN to the clauth-helper binary "
            "(e.g. target/debug/clauth-helper); got {!r}".format(BIN)
        )


def fixture_credentials(name):
    return (FIXTURES / "credentials" / (name + ".json")).read_bytes()


def write_by_rename(path, data):
    """Writes the way Claude Code does: a temp sibling renamed over the path."""
    tmp = path.with_name(".tmp-test-{}".format(os.getpid()))
    tmp.write_bytes(data)
    os.replace(str(tmp), str(path))


def wait_until(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def assert_no_token(testcase, value):
    text = value if isinstance(value, str) else json.dumps(value)
    testcase.assertNotIn("sk-ant-", text)


class HelperTest(unittest.TestCase):
    """A claude home copied from the fixtures, an empty store, and a profile `work`."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="clauth-py-")
        self.addCleanup(self._tmp.cleanup)
        root = Path(self._tmp.name)
        self.home = root / "home"
        self.store = root / "store"
        shutil.copytree(str(FIXTURES / "home"), str(self.home), symlinks=True)
        # A clean environment, so a developer's own tokens or CLAUTH_* never leak in, and a proxy
        # on a loopback port nothing listens on, so no request of the helper (its usage
        # endpoint's) can leave the machine.
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "CLAUTH_HOME": str(self.store),
            "HTTPS_PROXY": "http://127.0.0.1:9",
        }
        self.kw = {"binary": BIN, "env": self.env}
        out = subprocess.run(
            [BIN, "profile", "add", "work", "--credentials", "-"],
            input=fixture_credentials("work"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        self.assertEqual(out.returncode, 0, "profile add failed")
        assert_no_token(self, out.stdout.decode() + out.stderr.decode())

    def tearDown(self):
        # Sessions the test left behind would keep symlinks into the temp home alive; release them.
        try:
            for profile in ch.status(**self.kw)["profiles"]:
                for s in profile["sessions"]:
                    ch.release(s["session"], **self.kw)
        except ch.ClauthError:
            pass

    def session(self, **kw):
        return ch.Session("work", binary=BIN, env=self.env, **kw)

    def canonical(self):
        return self.store / "profiles" / "work" / "credentials.json"

    def runtime(self):
        return self.store / "runtimes" / "work"


class SessionTest(HelperTest):
    def test_context_manager_acquires_a_session_owned_by_this_process(self):
        with self.session() as s:
            self.assertTrue(s.session.startswith("s-"))
            self.assertEqual(Path(s.config_dir), self.runtime() / "config")
            self.assertTrue(Path(s.config_dir).is_dir())
            self.assertIn(s.link_mode, ("real", "fake"))
            sessions = ch.status("work", **self.kw)["profiles"][0]["sessions"]
            self.assertEqual([x["session"] for x in sessions], [s.session])
            self.assertEqual(sessions[0]["owner_pid"], os.getpid())

    def test_env_carries_the_config_dir_to_a_subprocess(self):
        self.env["ANTHROPIC_API_KEY"] = "not-a-real-key"
        with self.session() as s:
            self.assertEqual(s.env["CLAUDE_CONFIG_DIR"], s.config_dir)
            self.assertEqual(s.env["HOME"], str(self.home))
            # The child reports what it found, never the token itself.
            probe = (
                "import json, os; "
                "p = os.path.join(os.environ['CLAUDE_CONFIG_DIR'], '.credentials.json'); "
                "o = json.load(open(p))['claudeAiOauth']; "
                "print(o['subscriptionType'], 'user:inference' in o['scopes'], "
                "'ANTHROPIC_API_KEY' in os.environ)"
            )
            out = subprocess.run(
                [sys.executable, "-c", probe],
                env=s.env,
                stdout=subprocess.PIPE,
                check=True,
            )
            self.assertEqual(out.stdout.decode().split(), ["team", "True", "False"])


    def check_background_ticks_save_refreshed_credentials(self, mode):
        with self.session(link_mode=mode, tick_interval=0.2) as s:
            self.assertEqual(s.link_mode, mode)
            refreshed = fixture_credentials("work-refreshed")
            self.assertNotEqual(self.canonical().read_bytes(), refreshed)
            write_by_rename(Path(s.config_dir) / ".credentials.json", refreshed)
            self.assertTrue(
                wait_until(lambda: self.canonical().read_bytes() == refreshed),
                "a tick saved the refreshed credentials within 5 s",
            )
            self.assertIsNone(s.tick_error)
            assert_no_token(self, s.last_tick)

    def test_background_ticks_save_refreshed_credentials_real(self):
        self.check_background_ticks_save_refreshed_credentials("real")

    def test_background_ticks_save_refreshed_credentials_fake(self):
        self.check_background_ticks_save_refreshed_credentials("fake")

    def test_release_on_exit_saves_refreshed_credentials(self):
        # No background ticks: only the release's final sync can save them.
        with self.session(tick_interval=None) as s:
            write_by_rename(
                Path(s.config_dir) / ".credentials.json", fixture_credentials("work-refreshed")
            )
        self.assertEqual(self.canonical().read_bytes(), fixture_credentials("work-refreshed"))

    def test_release_on_exit_removes_the_runtime(self):
        with self.session() as s:
            self.assertTrue(self.runtime().exists())
        self.assertIsNone(s.session)
        self.assertFalse(self.runtime().exists())
        self.assertEqual(ch.status("work", **self.kw)["profiles"][0]["sessions"], [])

    def test_release_happens_when_the_block_raises(self):
        with self.assertRaises(KeyError):
            with self.session():
                raise KeyError("boom")
        self.assertFalse(self.runtime().exists())

    def test_a_session_released_elsewhere_ends_quietly(self):
        with self.session(tick_interval=0.1) as s:
            ch.release(s.session, **self.kw)
            self.assertTrue(wait_until(lambda: isinstance(s.tick_error, ch.SessionNotFound)))
        self.assertFalse(self.runtime().exists())


class ChildEnvTest(HelperTest):
    """The child's environment is the parent's with the acquire response applied: every name in
    ``env_remove`` removed, every variable of ``env`` set, nothing else changed."""

    INHERITED = {
        "ANTHROPIC_API_KEY": "not-a-real-key",
        "ANTHROPIC_AUTH_TOKEN": "not-a-real-token",
        "CLAUDE_CODE_OAUTH_TOKEN": "not-a-real-oauth-token",
        "ANTHROPIC_BASE_URL": "https://inherited.invalid",
        "CLAUDE_CONFIG_DIR": "/inherited/config",
        "CLAUTH_TEST_KEPT": "kept",
    }

    def child_sees(self, env):
        """The environment a subprocess started with ``env`` finds."""
        out = subprocess.run(
            [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
            env=env,
            stdout=subprocess.PIPE,
            check=True,
        )
        seen = json.loads(out.stdout.decode())
        # The interpreter may add variables of its own (LC_CTYPE on some systems).
        for key in ("LC_CTYPE",):
            if key not in env:
                seen.pop(key, None)
        return seen

    def expected(self, acquired):
        want = {k: v for k, v in self.env.items() if k not in acquired["env_remove"]}
        want.update(acquired["env"])
        return want

    def add_gateway_profile(self):
        out = subprocess.run(
            [
                BIN, "profile", "add", "gateway", "--credentials", "-",
                "--env", "ANTHROPIC_BASE_URL=https://gateway.invalid",
            ],
            input=fixture_credentials("personal"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        self.assertEqual(out.returncode, 0, "profile add gateway failed")

    def test_every_variable_in_env_remove_is_gone_and_every_env_entry_set(self):
        self.env.update(self.INHERITED)
        acquired = ch.acquire("work", owner_pid=os.getpid(), **self.kw)
        # The profile does not set ANTHROPIC_BASE_URL, so the response lists it.
        self.assertEqual(
            sorted(acquired["env_remove"]),
            sorted(
                [
                    "ANTHROPIC_API_KEY",
                    "ANTHROPIC_AUTH_TOKEN",
                    "CLAUDE_CODE_OAUTH_TOKEN",
                    "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR",
                    "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR",
                    "CLAUDE_CODE_OAUTH_REFRESH_TOKEN",
                    "CLAUDE_SECURESTORAGE_CONFIG_DIR",
                    "ANTHROPIC_BASE_URL",
                ]
            ),
        )
        seen = self.child_sees(ch.child_env(acquired, self.env))
        for key in acquired["env_remove"]:
            self.assertNotIn(key, seen)
        self.assertEqual(seen["CLAUDE_CONFIG_DIR"], acquired["config_dir"])
        self.assertEqual(seen, self.expected(acquired))

    def test_a_variable_the_response_does_not_list_reaches_the_child(self):
        # A profile that sets ANTHROPIC_BASE_URL: the response does not list it, so the
        # inherited value is left alone (the profile's own reaches Claude Code through the
        # runtime's settings.json).
        self.add_gateway_profile()
        self.env.update(self.INHERITED)
        with ch.Session("gateway", binary=BIN, env=self.env, tick_interval=None) as s:
            seen = self.child_sees(s.env)
            self.assertEqual(seen["ANTHROPIC_BASE_URL"], "https://inherited.invalid")
            self.assertEqual(seen["CLAUTH_TEST_KEPT"], "kept")
            self.assertEqual(seen["CLAUDE_CONFIG_DIR"], s.config_dir)
            for key in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
                self.assertNotIn(key, seen)
        acquired = ch.acquire("gateway", owner_pid=os.getpid(), **self.kw)
        self.assertNotIn("ANTHROPIC_BASE_URL", acquired["env_remove"])
        self.assertEqual(self.child_sees(ch.child_env(acquired, self.env)), self.expected(acquired))

    def fake_helper(self, acquire_response):
        """A helper that answers acquire with ``acquire_response`` and release with ok."""
        fake = Path(self._tmp.name) / "fake-helper"
        answers = {
            "capabilities": {
                "protocol": 1, "ok": True, "protocol_versions": [1],
                "verbs": ["acquire", "tick", "release", "status", "capabilities"],
                "features": ["owner_pid", "env_remove"], "version": "0.0.0",
            },
            "acquire": acquire_response,
            "release": {"protocol": 1, "ok": True, "session": "s-1"},
        }
        script = "#!/bin/sh\ncat >/dev/null\n: >>{}\necho \"$1\" >>{}\ncase $1 in\n".format(
            Path(self._tmp.name) / "calls", Path(self._tmp.name) / "calls"
        )
        for verb, answer in answers.items():
            script += "{}) echo '{}' ;;\n".format(verb, json.dumps(answer))
        script += "esac\n"
        fake.write_text(script)
        fake.chmod(0o755)
        return str(fake)

    def test_a_session_applies_whatever_names_the_response_gives(self):
        # Not a fixed list: names no helper sends today are removed and set just the same.
        fake = self.fake_helper(
            {
                "protocol": 1, "ok": True, "session": "s-1", "profile": "work",
                "config_dir": "/runtime/config", "link_mode": "fake",
                "env": {"CLAUDE_CONFIG_DIR": "/runtime/config", "CLAUTH_TEST_SET": "a \"b\" c"},
                "env_remove": ["CLAUTH_TEST_GONE", "CLAUTH_TEST_NEVER_SET"],
            }
        )
        self.env.update(self.INHERITED)
        self.env["CLAUTH_TEST_GONE"] = "gone"
        with ch.Session("work", binary=fake, env=self.env, tick_interval=None) as s:
            seen = self.child_sees(s.env)
        want = dict(self.env)
        del want["CLAUTH_TEST_GONE"]
        want["CLAUDE_CONFIG_DIR"] = "/runtime/config"
        want["CLAUTH_TEST_SET"] = 'a "b" c'
        # ANTHROPIC_API_KEY and the rest are not listed by this response, so they stay.
        self.assertEqual(seen, want)

    def test_a_response_without_env_remove_fails_and_the_session_is_released(self):
        fake = self.fake_helper(
            {
                "protocol": 1, "ok": True, "session": "s-1", "profile": "work",
                "config_dir": "/runtime/config", "link_mode": "fake",
                "env": {"CLAUDE_CONFIG_DIR": "/runtime/config"},
            }
        )
        with self.assertRaises(ch.HelperFailed):
            with ch.Session("work", binary=fake, env=self.env, tick_interval=None):
                self.fail("entered a session whose environment is unknown")
        calls = (Path(self._tmp.name) / "calls").read_text().split()
        self.assertEqual(calls, ["capabilities", "acquire", "release"])
        with self.assertRaises(ch.HelperFailed):
            ch.child_env({"env": {}, "env_remove": "ANTHROPIC_API_KEY"}, {})


class ErrorTest(HelperTest):
    def test_unknown_profile_raises_a_typed_error(self):
        with self.assertRaises(ch.ProfileNotFound) as caught:
            with ch.Session("nope", binary=BIN, env=self.env):
                self.fail("entered a session of a profile that does not exist")
        err = caught.exception
        self.assertIsInstance(err, ch.ClauthError)
        self.assertEqual(err.code, "profile_not_found")
        self.assertFalse(err.retryable)
        self.assertTrue(err.message)

    def test_unknown_session_raises_session_not_found(self):
        with self.assertRaises(ch.SessionNotFound):
            ch.tick("s-000000000000000000000000", **self.kw)

    def test_unknown_codes_map_to_the_base_class(self):
        err = ch.ClauthError.from_wire({"code": "brand_new", "message": "m", "retryable": True})
        self.assertIs(type(err), ch.ClauthError)
        self.assertEqual((err.code, err.message, err.retryable), ("brand_new", "m", True))
        self.assertIs(type(ch.ClauthError.from_wire({"code": "io"})), ch.StoreIOError)

    def test_a_missing_binary_raises_helper_not_found(self):
        with self.assertRaises(ch.HelperNotFound):
            ch.capabilities(binary=str(Path(self._tmp.name) / "no-such-helper"))

    def test_a_helper_without_protocol_1_is_refused_on_enter(self):
        fake = Path(self._tmp.name) / "future-helper"
        fake.write_text(
            "#!/bin/sh\ncat >/dev/null\n"
            'echo \'{"protocol":1,"ok":true,"protocol_versions":[2],"verbs":[],"features":[]}\'\n'
        )
        fake.chmod(0o755)
        with self.assertRaises(ch.UnsupportedProtocol):
            with ch.Session("work", binary=str(fake), env=self.env):
                self.fail("entered a session with a helper that lacks protocol 1")

    def test_lock_timeout_is_retried_with_backoff(self):
        self.env["CLAUTH_LOCK_TIMEOUT_MS"] = "50"
        # Hold the state lock the way another clauth-helper would (flock), then let it go.
        with open(str(self.store / "state.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with self.assertRaises(ch.LockTimeout) as caught:
                ch.status(retries=0, **self.kw)
            self.assertTrue(caught.exception.retryable)
            threading.Timer(0.3, fcntl.flock, (lock, fcntl.LOCK_UN)).start()
            self.assertTrue(ch.status(**self.kw)["ok"])


class PickTest(HelperTest):
    """``pick`` and usage, on profiles whose usage needs no request (no login, an expired
    token)."""

    def setUp(self):
        super().setUp()
        doc = json.loads(fixture_credentials("work"))
        doc["claudeAiOauth"]["accessToken"] = "sk-ant-oat01-PYEXPIRED-AAAAAAAAAAAAAAAAAAAAAAAA"
        doc["claudeAiOauth"]["refreshToken"] = "sk-ant-ort01-PYEXPIRED-AAAAAAAAAAAAAAAAAAAAAAA"
        doc["claudeAiOauth"]["expiresAt"] = 1000
        for name, creds in (("expired", json.dumps(doc).encode()), ("fresh", None)):
            args = [BIN, "profile", "add", name] + (["--credentials", "-"] if creds else [])
            out = subprocess.run(
                args, input=creds or b"", stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env
            )
            self.assertEqual(out.returncode, 0, out.stderr.decode())

    def test_a_session_by_pick_knows_the_profile_chosen(self):
        with ch.Session(pick={"among": ["expired", "fresh"]}, binary=BIN, env=self.env) as s:
            self.assertEqual(s.profile, "expired")
            self.assertEqual(s.config_dir, str(self.store / "runtimes" / "expired" / "config"))
            self.assertIsNone(s.picked["headroom"])
            self.assertEqual(s.picked["usage_error"], "token_expired")
            self.assertEqual(s.env["CLAUDE_CONFIG_DIR"], s.config_dir)
        self.assertFalse((self.store / "runtimes" / "expired").exists())
        with self.assertRaises(ValueError):
            ch.Session("work", pick={})

    def test_no_headroom_is_typed_retryable_and_raised_at_once(self):
        with self.assertRaises(ch.NoHeadroom) as caught:
            ch.acquire(pick={"among": ["fresh"]}, **self.kw)
        err = caught.exception
        self.assertTrue(err.retryable)
        self.assertIsNone(err.resets_at)
        fake = Path(self._tmp.name) / "no-headroom-helper"
        calls = Path(self._tmp.name) / "no-headroom-calls"
        fake.write_text(
            "#!/bin/sh\ncat >/dev/null\necho x >>{}\n".format(calls)
            + "echo '{\"protocol\":1,\"ok\":false,\"error\":{\"code\":\"no_headroom\","
            + "\"message\":\"m\",\"retryable\":true,\"resets_at\":\"2030-01-01T01:00:00Z\"}}'\n"
        )
        fake.chmod(0o755)
        with self.assertRaises(ch.NoHeadroom) as caught:
            ch.acquire(pick={}, binary=str(fake), env=self.env)
        self.assertEqual(caught.exception.resets_at, "2030-01-01T01:00:00Z")
        self.assertEqual(calls.read_text().split(), ["x"], "not retried")

    def test_status_with_usage_says_why_a_profile_has_none(self):
        plain = ch.status("fresh", **self.kw)["profiles"][0]
        self.assertNotIn("usage", plain)
        st = ch.status("fresh", usage=True, **self.kw)["profiles"][0]
        self.assertEqual((st["usage"], st["usage_error"]), (None, "no_login"))
        st = ch.status("expired", usage=True, **self.kw)["profiles"][0]
        self.assertEqual(st["usage_error"], "token_expired")


class FunctionTest(HelperTest):
    def test_capabilities(self):
        caps = ch.capabilities(**self.kw)
        self.assertIn(1, caps["protocol_versions"])
        for verb in ("acquire", "tick", "release", "status", "capabilities"):
            self.assertIn(verb, caps["verbs"])
        self.assertIn("owner_pid", caps["features"])

    def test_one_shot_functions_round_trip(self):
        acquired = ch.acquire("work", owner_pid=os.getpid(), **self.kw)
        assert_no_token(self, acquired)
        self.assertEqual(acquired["env"]["CLAUDE_CONFIG_DIR"], acquired["config_dir"])
        ticked = ch.tick(acquired["session"], **self.kw)
        self.assertFalse(ticked["credentials_saved"])
        st = ch.status(**self.kw)
        assert_no_token(self, st)
        self.assertTrue(st["profiles"][0]["credentials"]["present"])
        released = ch.release(acquired["session"], **self.kw)
        self.assertEqual((released["runtime_removed"], released["remaining_sessions"]), (True, 0))


if __name__ == "__main__":
    unittest.main()
