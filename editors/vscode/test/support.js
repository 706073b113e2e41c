'use strict';
// What the unit tests share: the binary under test and a fixture home with a store per test.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const BIN = process.env.CLAUTH_HELPER_BIN;
// Fail, not skip: a suite that silently tests nothing would pass in CI.
if (!BIN || !fs.existsSync(BIN)) {
  throw new Error(`set CLAUTH_HELPER_BIN to the clauth-helper binary (e.g. target/debug/clauth-helper); got ${BIN}`);
}
const FIXTURES = path.resolve(__dirname, '..', '..', '..', 'fixtures');

function assertNoToken(value) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  assert.ok(!text.includes('sk-ant-'), 'a token reached an output');
}

/**
 * A claude home copied from the fixtures and an empty store, removed after `t`; profiles
 * `work` and `personal` from the fixture credentials, and `me`, the home profile, when asked.
 */
function fixture(t, { homeProfile = false } = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clauth-vscode-'));
  const home = path.join(root, 'home');
  const store = path.join(root, 'store');
  fs.cpSync(path.join(FIXTURES, 'home'), home, { recursive: true, verbatimSymlinks: true });
  // A clean environment, so a developer's own tokens or CLAUTH_* never leak in.
  const env = { PATH: process.env.PATH, HOME: home, CLAUTH_HOME: store };
  const run = (args, input) => {
    const out = spawnSync(BIN, args, { input, env });
    assertNoToken(out.stdout.toString() + out.stderr.toString());
    assert.equal(out.status, 0, `clauth-helper ${args.join(' ')} failed: ${out.stderr}`);
    return out.stdout.toString();
  };
  for (const name of ['work', 'personal']) {
    run(['profile', 'add', name, '--credentials', '-'], fs.readFileSync(path.join(FIXTURES, 'credentials', `${name}.json`)));
  }
  if (homeProfile) run(['profile', 'add', 'me', '--from-claude']);
  // What a test starts is stopped before its files go, last started first: a serve process that
  // released its sessions after the removal would make the store again.
  const deferred = [];
  t.after(async () => {
    for (const fn of deferred.reverse()) await fn();
    fs.rmSync(root, { recursive: true, force: true });
  });
  return {
    root,
    /** Runs `fn` when the test ends, before its files are removed. */
    defer(fn) {
      deferred.push(fn);
    },
    home,
    store,
    env,
    run,
    status() {
      return JSON.parse(run(['status'], '{}'));
    },
    sessionsOf(profile) {
      const p = this.status().profiles.find((x) => x.name === profile);
      return p ? p.sessions.map((s) => s.session) : [];
    },
  };
}

/** Resolves once `predicate()` holds; rejects after `ms`. */
async function waitFor(predicate, ms = 10000, what = 'the condition') {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (await predicate()) return;
  throw new Error(`${what} did not hold within ${ms} ms`);
}

/**
 * `promise`, or a rejection after `ms`. The timer also keeps Node running while the awaited
 * thing is only a child process, which the client does not keep Node alive for when idle.
 */
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

module.exports = { BIN, FIXTURES, fixture, waitFor, within, assertNoToken };
