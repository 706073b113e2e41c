'use strict';
// Tests of the Node client against the real binary.
// Run: CLAUTH_HELPER_BIN=/path/to/clauth-helper node --test test/client.test.js

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const { Client, ClauthError, withSession, childEnv } = require('../clauth-helper.js');

const BIN = process.env.CLAUTH_HELPER_BIN;
// Fail, not skip: a suite that silently tests nothing would pass in CI.
if (!BIN || !fs.existsSync(BIN)) {
  throw new Error(`set CLAUTH_HELPER_BIN to the clauth-helper binary (e.g. target/debug/clauth-helper); got ${BIN}`);
}
const CLIENT = path.resolve(__dirname, '..', 'clauth-helper.js');
const FIXTURES = path.resolve(__dirname, '..', '..', '..', '..', 'fixtures');

const credentials = (name) => fs.readFileSync(path.join(FIXTURES, 'credentials', `${name}.json`));

function assertNoToken(value) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  assert.ok(!text.includes('sk-ant-'), 'a token reached an output');
}

/** Writes the way Claude Code does: a temp sibling renamed over the path. */
function writeByRename(file, bytes) {
  const tmp = path.join(path.dirname(file), `.tmp-test-${process.pid}`);
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}

async function waitFor(predicate, ms = 5000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (predicate()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return predicate();
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A claude home copied from the fixtures, an empty store, a profile `work`; removed after `t`. */
function fixture(t) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clauth-node-'));
  const home = path.join(root, 'home');
  const store = path.join(root, 'store');
  fs.cpSync(path.join(FIXTURES, 'home'), home, { recursive: true, verbatimSymlinks: true });
  // A clean environment, so a developer's own tokens or CLAUTH_* never leak in, and a proxy on a
  // loopback port nothing listens on, so no request of the helper (serve looks at the usage of
  // its sessions' accounts) can leave the machine.
  const env = { PATH: process.env.PATH, HOME: home, CLAUTH_HOME: store, HTTPS_PROXY: 'http://127.0.0.1:9' };
  const f = {
    root,
    home,
    store,
    env,
    runtime: path.join(store, 'runtimes', 'work'),
    canonical: path.join(store, 'profiles', 'work', 'credentials.json'),
    oneShot(verb, body) {
      const out = spawnSync(BIN, [verb], { input: JSON.stringify(body), env });
      assertNoToken(out.stdout.toString() + out.stderr.toString());
      return JSON.parse(out.stdout.toString());
    },
    clients: [],
    async start() {
      const client = await Client.start({ binary: BIN, env });
      client.on('event', assertNoToken);
      // Closed before the directory goes (below): a serve still running writes in the store
      // (its usage watch keeps a profile's usage cache).
      f.clients.push(client);
      return client;
    },
  };
  const out = spawnSync(BIN, ['profile', 'add', 'work', '--credentials', '-'], {
    input: credentials('work'),
    env,
  });
  assert.equal(out.status, 0, 'profile add failed');
  assertNoToken(out.stdout.toString() + out.stderr.toString());
  t.after(async () => {
    for (const client of f.clients) await client.close();
    fs.rmSync(root, { recursive: true, force: true });
  });
  return f;
}

test('capabilities reports protocol 1 and the verbs', async (t) => {
  const c = await fixture(t).start();
  const caps = await c.capabilities();
  assert.ok(caps.protocol_versions.includes(1));
  for (const verb of ['acquire', 'tick', 'release', 'status', 'capabilities']) {
    assert.ok(caps.verbs.includes(verb), verb);
  }
  assert.ok(caps.features.includes('serve_events'));
});

test('acquire hands out a runtime held by the serve process', async (t) => {
  const f = fixture(t);
  const c = await f.start();
  const s = await c.acquire('work');
  assertNoToken(s);
  assert.match(s.session, /^s-/);
  assert.equal(s.profile, 'work');
  assert.equal(s.configDir, path.join(f.runtime, 'config'));
  assert.ok(fs.statSync(s.configDir).isDirectory());
  assert.ok(['real', 'fake'].includes(s.linkMode));
  const st = await c.status('work');
  assertNoToken(st);
  assert.deepEqual(
    st.profiles[0].sessions.map((x) => [x.session, x.held]),
    [[s.session, true]],
  );
});

test('the session env carries CLAUDE_CONFIG_DIR to a child process', async (t) => {
  const f = fixture(t);
  f.env.ANTHROPIC_API_KEY = 'not-a-real-key';
  const c = await f.start();
  const s = await c.acquire('work');
  assert.equal(s.env.CLAUDE_CONFIG_DIR, s.configDir);
  assert.equal(s.env.HOME, f.home);
  // The child reports what it found, never the token itself.
  const probe = `
    const p = require('path').join(process.env.CLAUDE_CONFIG_DIR, '.credentials.json');
    const o = JSON.parse(require('fs').readFileSync(p, 'utf8')).claudeAiOauth;
    console.log(o.subscriptionType, o.scopes.includes('user:inference'), 'ANTHROPIC_API_KEY' in process.env);`;
  const out = spawnSync(process.execPath, ['-e', probe], { env: s.env });
  assert.equal(out.status, 0, out.stderr.toString());
  assert.equal(out.stdout.toString().trim(), 'team true false');
});

// The child's environment is the parent's with the acquire response applied: every name in
// env_remove removed, every variable of env set, nothing else changed.
const INHERITED = {
  ANTHROPIC_API_KEY: 'not-a-real-key',
  ANTHROPIC_AUTH_TOKEN: 'not-a-real-token',
  CLAUDE_CODE_OAUTH_TOKEN: 'not-a-real-oauth-token',
  ANTHROPIC_BASE_URL: 'https://inherited.invalid',
  CLAUDE_CONFIG_DIR: '/inherited/config',
  CLAUTH_TEST_KEPT: 'kept',
};

/** The environment a child process started with `env` finds. */
function childSees(env) {
  const out = spawnSync(process.execPath, ['-e', 'process.stdout.write(JSON.stringify(process.env))'], { env });
  assert.equal(out.status, 0, out.stderr.toString());
  return JSON.parse(out.stdout.toString());
}

/** The parent's `env` with a raw acquire response applied by hand. */
function applied(env, acquired) {
  const want = {};
  for (const [k, v] of Object.entries(env)) if (!acquired.env_remove.includes(k)) want[k] = v;
  return { ...want, ...acquired.env };
}

test('every variable in env_remove is gone from a child, and every env entry set', async (t) => {
  const f = fixture(t);
  Object.assign(f.env, INHERITED);
  const raw = f.oneShot('acquire', { profile: 'work' });
  // The profile does not set ANTHROPIC_BASE_URL, so the response lists it.
  assert.deepEqual(
    [...raw.env_remove].sort(),
    [
      'ANTHROPIC_API_KEY',
      'ANTHROPIC_AUTH_TOKEN',
      'ANTHROPIC_BASE_URL',
      'CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR',
      'CLAUDE_CODE_OAUTH_REFRESH_TOKEN',
      'CLAUDE_CODE_OAUTH_TOKEN',
      'CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR',
      'CLAUDE_SECURESTORAGE_CONFIG_DIR',
    ],
  );
  assert.equal(f.oneShot('release', { session: raw.session }).ok, true);
  const c = await f.start();
  const s = await c.acquire('work');
  const seen = childSees(s.env);
  for (const key of raw.env_remove) assert.ok(!(key in seen), key);
  assert.equal(seen.CLAUDE_CONFIG_DIR, s.configDir);
  assert.deepEqual(seen, applied(f.env, { env: { CLAUDE_CONFIG_DIR: s.configDir, CLAUTH_PROFILE: 'work' }, env_remove: raw.env_remove }));
});

test('a variable the response does not list reaches the child', async (t) => {
  // A profile that sets ANTHROPIC_BASE_URL: the response does not list it, so the inherited
  // value is left alone (the profile's own reaches Claude Code through the runtime's settings.json).
  const f = fixture(t);
  const add = spawnSync(
    BIN,
    ['profile', 'add', 'gateway', '--credentials', '-', '--env', 'ANTHROPIC_BASE_URL=https://gateway.invalid'],
    { input: credentials('personal'), env: f.env },
  );
  assert.equal(add.status, 0, 'profile add gateway failed');
  Object.assign(f.env, INHERITED);
  const raw = f.oneShot('acquire', { profile: 'gateway' });
  assert.ok(!raw.env_remove.includes('ANTHROPIC_BASE_URL'), JSON.stringify(raw.env_remove));
  assert.equal(f.oneShot('release', { session: raw.session }).ok, true);
  const c = await f.start();
  const s = await c.acquire('gateway');
  const seen = childSees(s.env);
  assert.equal(seen.ANTHROPIC_BASE_URL, 'https://inherited.invalid');
  assert.equal(seen.CLAUTH_TEST_KEPT, 'kept');
  assert.equal(seen.CLAUDE_CONFIG_DIR, s.configDir);
  for (const key of ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'CLAUDE_CODE_OAUTH_TOKEN']) {
    assert.ok(!(key in seen), key);
  }
  assert.deepEqual(seen, applied(f.env, { env: { CLAUDE_CONFIG_DIR: s.configDir, CLAUTH_PROFILE: 'gateway' }, env_remove: raw.env_remove }));
});

test('childEnv applies whatever names the response gives, and refuses a response without them', () => {
  // Not a fixed list: names no helper sends today are removed and set just the same.
  const base = { ...INHERITED, CLAUTH_TEST_GONE: 'gone' };
  const env = childEnv(
    {
      env: { CLAUDE_CONFIG_DIR: '/runtime/config', CLAUTH_TEST_SET: 'a "b" c' },
      env_remove: ['CLAUTH_TEST_GONE', 'CLAUTH_TEST_NEVER_SET'],
    },
    base,
  );
  const want = { ...INHERITED, CLAUDE_CONFIG_DIR: '/runtime/config', CLAUTH_TEST_SET: 'a "b" c' };
  assert.deepEqual(env, want);
  assert.deepEqual(childSees(env), want);
  assert.equal(base.CLAUTH_TEST_GONE, 'gone', 'the base is not changed');
  for (const bad of [
    { env: { CLAUDE_CONFIG_DIR: '/x' } },
    { env: { CLAUDE_CONFIG_DIR: '/x' }, env_remove: 'ANTHROPIC_API_KEY' },
    { env_remove: [] },
    { env: { N: 1 }, env_remove: [] },
  ]) {
    assert.throws(() => childEnv(bad, {}), { code: 'helper_failed' }, JSON.stringify(bad));
  }
});

test('an acquire response without env_remove rejects, and the session is released', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clauth-node-fake-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const calls = path.join(root, 'calls');
  const fake = path.join(root, 'fake-helper');
  const answers = {
    capabilities: { ok: true, protocol_versions: [1], verbs: [], features: ['env_remove'], version: '0.0.0' },
    acquire: {
      ok: true,
      session: 's-1',
      profile: 'work',
      config_dir: '/runtime/config',
      link_mode: 'fake',
      env: { CLAUDE_CONFIG_DIR: '/runtime/config' },
    },
    release: { ok: true, session: 's-1' },
  };
  fs.writeFileSync(
    fake,
    `#!${process.execPath}
const fs = require('fs');
const answers = ${JSON.stringify(answers)};
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line);
  fs.appendFileSync(${JSON.stringify(calls)}, req.verb + '\\n');
  console.log(JSON.stringify({ protocol: 1, id: req.id, ...answers[req.verb] }));
});
`,
  );
  fs.chmodSync(fake, 0o755);
  const c = await Client.start({ binary: fake, env: {} });
  t.after(() => c.close());
  await assert.rejects(c.acquire('work'), { code: 'helper_failed' });
  assert.deepEqual(fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean), ['capabilities', 'acquire', 'release']);
});

for (const mode of ['real', 'fake']) {
  test(`refreshed credentials in a ${mode} runtime produce a synced event within 5 s`, async (t) => {
    const f = fixture(t);
    const c = await f.start();
    const s = await c.acquire('work', { linkMode: mode });
    assert.equal(s.linkMode, mode);
    const synced = new Promise((resolve) => {
      const listener = (ev) => {
        if (ev.credentials_saved) {
          c.off('synced', listener);
          resolve(ev);
        }
      };
      c.on('synced', listener);
    });
    writeByRename(path.join(s.configDir, '.credentials.json'), credentials('work-refreshed'));
    const ev = await withTimeout(synced, 5000, 'synced event');
    assert.equal(ev.session, s.session);
    assert.equal(ev.credentials_saved, true);
    assert.deepEqual(fs.readFileSync(f.canonical), credentials('work-refreshed'));
  });
}

test('tick and release answer with sync reports', async (t) => {
  const f = fixture(t);
  const c = await f.start();
  const s = await c.acquire('work');
  const ticked = await c.tick(s.session);
  assert.equal(ticked.session, s.session);
  assert.equal(typeof ticked.credentials_saved, 'boolean');
  const released = await c.release(s.session);
  assert.equal(released.runtime_removed, true);
  assert.equal(released.remaining_sessions, 0);
  assert.ok(!fs.existsSync(f.runtime));
});

test('close() releases held sessions and tears the runtime down', async (t) => {
  const f = fixture(t);
  const c = await f.start();
  const s = await c.acquire('work');
  writeByRename(path.join(s.configDir, '.credentials.json'), credentials('work-refreshed'));
  assert.ok(fs.existsSync(f.runtime));
  const exit = await c.close();
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(!fs.existsSync(f.runtime), 'runtime removed');
  assert.deepEqual(f.oneShot('status', {}).profiles[0].sessions, []);
  // The final sync of the release saved what the session refreshed.
  assert.deepEqual(fs.readFileSync(f.canonical), credentials('work-refreshed'));
  await assert.rejects(c.status(), { code: 'helper_exited' });
});

test('requests are matched to responses by id', async (t) => {
  const c = await fixture(t).start();
  const [caps, st, missing] = await Promise.all([
    c.capabilities(),
    c.status(),
    c.tick('s-000000000000000000000000').catch((e) => e),
    c.status('work'),
  ]);
  assert.ok(Array.isArray(caps.protocol_versions));
  assert.ok(Array.isArray(st.profiles));
  assert.ok(missing instanceof ClauthError);
  assert.equal(missing.code, 'session_not_found');
});

test('an unknown profile rejects with a typed error', async (t) => {
  const c = await fixture(t).start();
  const err = await c.acquire('nope').catch((e) => e);
  assert.ok(err instanceof ClauthError);
  assert.equal(err.code, 'profile_not_found');
  assert.equal(err.retryable, false);
  assert.ok(err.message.length > 0);
});

test('a session released elsewhere produces a session_ended event', async (t) => {
  const f = fixture(t);
  const c = await f.start();
  const s = await c.acquire('work');
  const ended = new Promise((resolve) => c.once('session_ended', resolve));
  assert.equal(f.oneShot('release', { session: s.session }).ok, true);
  const ev = await withTimeout(ended, 5000, 'session_ended event');
  assert.equal(ev.session, s.session);
});

test('withSession releases and closes when fn throws', async (t) => {
  const f = fixture(t);
  const opts = { binary: BIN, env: f.env };
  await assert.rejects(
    withSession(
      'work',
      async (s) => {
        assert.ok(fs.existsSync(s.configDir));
        throw new Error('boom');
      },
      opts,
    ),
    /boom/,
  );
  assert.ok(!fs.existsSync(f.runtime));
  const result = await withSession('work', async (s) => s.linkMode, { ...opts, linkMode: 'fake' });
  assert.equal(result, 'fake');
  assert.ok(!fs.existsSync(f.runtime));
});

test('a program that never closes its client exits, and its sessions end with it', async (t) => {
  const f = fixture(t);
  const script = `
    const { Client } = require(${JSON.stringify(CLIENT)});
    (async () => {
      const c = await Client.start({ binary: process.env.CLAUTH_HELPER_BIN });
      const s = await c.acquire('work');
      console.log(s.session);
    })();`;
  const child = spawn(process.execPath, ['-e', script], {
    env: { ...f.env, CLAUTH_HELPER_BIN: BIN },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // If it hangs (the bug this test is about), it must not hang the test run too.
  t.after(() => child.kill('SIGKILL'));
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  const code = await withTimeout(new Promise((r) => child.on('close', r)), 10000, 'exit of the program');
  assert.equal(code, 0);
  assert.match(stdout, /^s-/);
  assert.ok(await waitFor(() => !fs.existsSync(f.runtime)), 'runtime removed after the program exited');
});

/** Adds `expired` (a login whose usage needs no request) and `nologin` to the fixture. */
function addPickProfiles(f) {
  const doc = JSON.parse(credentials('work'));
  doc.claudeAiOauth.accessToken = 'sk-ant-oat01-NODEEXPIRED-AAAAAAAAAAAAAAAAAAAAAAAA';
  doc.claudeAiOauth.refreshToken = 'sk-ant-ort01-NODEEXPIRED-AAAAAAAAAAAAAAAAAAAAAAA';
  doc.claudeAiOauth.expiresAt = 1000;
  for (const [name, input] of [['expired', JSON.stringify(doc)], ['nologin', null]]) {
    const args = ['profile', 'add', name, ...(input ? ['--credentials', '-'] : [])];
    const out = spawnSync(BIN, args, { input: input || '', env: f.env });
    assert.equal(out.status, 0, out.stderr.toString());
  }
}

test('acquire by pick holds the chosen profile and says what was known of it', async (t) => {
  const f = fixture(t);
  addPickProfiles(f);
  const c = await f.start();
  const s = await c.acquire(null, { pick: { among: ['expired', 'nologin'] } });
  assertNoToken(s);
  assert.equal(s.profile, 'expired');
  assert.equal(s.configDir, path.join(f.store, 'runtimes', 'expired', 'config'));
  assert.equal(s.env.CLAUDE_CONFIG_DIR, s.configDir);
  assert.deepEqual([s.picked.headroom, s.picked.usage, s.picked.usage_error], [null, null, 'token_expired']);
  const plain = await c.acquire('work');
  assert.equal(plain.picked, null);
  await assert.rejects(c.acquire('work', { pick: {} }), (e) => e.code === 'invalid_request');
});

test('no_headroom rejects at once with its resetsAt', async (t) => {
  const f = fixture(t);
  addPickProfiles(f);
  const c = await f.start();
  const err = await c.acquire(null, { pick: { among: ['nologin'] } }).catch((e) => e);
  assert.ok(err instanceof ClauthError);
  assert.equal(err.code, 'no_headroom');
  assert.equal(err.retryable, true);
  assert.equal(err.resetsAt, null);
  const wire = ClauthError.fromWire({ code: 'no_headroom', message: 'm', retryable: true, resets_at: '2030-01-01T01:00:00Z' });
  assert.equal(wire.resetsAt, '2030-01-01T01:00:00Z');
  // Not retried: one request, where a retryable lock_timeout would get four.
  let asked = 0;
  const fake = { _send: async () => { asked++; throw wire; }, _retries: 3 };
  await assert.rejects(Client.prototype.request.call(fake, 'acquire', {}), (e) => e === wire);
  assert.equal(asked, 1);
});

test('status with usage says why a profile has none', async (t) => {
  const f = fixture(t);
  addPickProfiles(f);
  const c = await f.start();
  const plain = await c.status('nologin');
  assert.ok(!('usage' in plain.profiles[0]));
  const st = await c.status('nologin', { usage: true });
  assert.deepEqual([st.profiles[0].usage, st.profiles[0].usage_error], [null, 'no_login']);
  const expired = await c.status('expired', { usage: true });
  assert.equal(expired.profiles[0].usage_error, 'token_expired');
});

test('a missing binary rejects with helper_not_found', async () => {
  const err = await Client.start({ binary: path.join(os.tmpdir(), 'no-such-clauth-helper') }).catch((e) => e);
  assert.ok(err instanceof ClauthError);
  assert.equal(err.code, 'helper_not_found');
});
