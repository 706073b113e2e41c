'use strict';
// The terminal environment of an acquire response, and what a real shell sees under it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');

const { terminalEnvironment, applyToCollection, resultingEnvironment } = require('../src/envmap.js');
const { fixture, BIN } = require('./support.js');

function acquire(f, profile) {
  const out = spawnSync(BIN, ['acquire'], { input: JSON.stringify({ profile }), env: f.env });
  assert.equal(out.status, 0, out.stderr.toString());
  return JSON.parse(out.stdout.toString());
}

/** A stand-in for vscode.EnvironmentVariableCollection that records what is done to it. */
function fakeCollection() {
  const ops = [];
  return {
    ops,
    description: 'old',
    clear() {
      ops.length = 0;
      ops.push(['clear']);
    },
    replace(key, value) {
      ops.push(['replace', key, value]);
    },
  };
}

test('every env variable is set, every env_remove variable is blanked, CLAUTH_PROFILE names the profile', (t) => {
  const f = fixture(t);
  const r = acquire(f, 'work');
  const m = terminalEnvironment(r, 'work');
  assert.equal(m.set.CLAUDE_CONFIG_DIR, r.config_dir);
  assert.equal(m.set.CLAUTH_PROFILE, 'work');
  assert.deepEqual([...m.blank].sort(), [...r.env_remove].sort());
  for (const key of ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'CLAUDE_CODE_OAUTH_TOKEN', 'ANTHROPIC_BASE_URL']) {
    assert.ok(m.blank.includes(key), key);
  }
});

test('a shell started under the mapping sees the runtime, the profile and none of the overriding variables', (t) => {
  const f = fixture(t);
  const m = terminalEnvironment(acquire(f, 'personal'), 'personal');
  const base = { PATH: process.env.PATH, HOME: f.home, ANTHROPIC_API_KEY: 'from-the-window', CLAUDE_CONFIG_DIR: '/elsewhere' };
  const out = spawnSync('sh', ['-c', 'printf "%s|%s|%s" "$CLAUDE_CONFIG_DIR" "$CLAUTH_PROFILE" "$ANTHROPIC_API_KEY"'], {
    env: resultingEnvironment(base, m),
  });
  assert.equal(out.stdout.toString(), `${f.store}/runtimes/personal/config|personal|`);
});

test('a CLAUTH_PROFILE the helper sends wins over the name the window chose', () => {
  const m = terminalEnvironment({ env: { CLAUDE_CONFIG_DIR: '/r', CLAUTH_PROFILE: 'work' }, env_remove: ['X'] }, 'other');
  assert.equal(m.set.CLAUTH_PROFILE, 'work');
});

test('a variable both set and removed keeps its value', () => {
  const m = terminalEnvironment({ env: { ANTHROPIC_BASE_URL: 'https://llm.example.com' }, env_remove: ['ANTHROPIC_BASE_URL', 'A', 'A'] }, 'gw');
  assert.equal(m.set.ANTHROPIC_BASE_URL, 'https://llm.example.com');
  assert.deepEqual(m.blank, ['A']);
});

test('a response without env or env_remove is refused with helper_failed', () => {
  for (const bad of [{}, { env: {} }, { env_remove: [] }, { env: { A: 1 }, env_remove: [] }, { env: {}, env_remove: [1] }, { env: [], env_remove: [] }, null]) {
    assert.throws(() => terminalEnvironment(bad, 'work'), { code: 'helper_failed' }, JSON.stringify(bad));
  }
});

test('the collection is replaced whole, and emptied when the window has no account', () => {
  const c = fakeCollection();
  applyToCollection(c, { set: { CLAUDE_CONFIG_DIR: '/r', CLAUTH_PROFILE: 'w' }, blank: ['ANTHROPIC_API_KEY'] }, 'desc');
  assert.deepEqual(c.ops, [
    ['clear'],
    ['replace', 'CLAUDE_CONFIG_DIR', '/r'],
    ['replace', 'CLAUTH_PROFILE', 'w'],
    ['replace', 'ANTHROPIC_API_KEY', ''],
  ]);
  assert.equal(c.description, 'desc');
  applyToCollection(c, null);
  assert.deepEqual(c.ops, [['clear']]);
  assert.equal(c.description, undefined);
});
