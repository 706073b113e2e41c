'use strict';
// The account and usage of a profile, read from the documents Claude Code writes.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const { accountInfo, usageFrom } = require('../src/account.js');
const { fixture, BIN } = require('./support.js');

const usageCache = (accountUuid, fiveHour, sevenDay) => ({
  fetchedAtMs: 1,
  ...(accountUuid ? { accountUuid } : {}),
  utilization: { five_hour: { utilization: fiveHour, resets_at: null }, seven_day: { utilization: sevenDay, resets_at: null } },
});

test('the home profile is the claude home account', (t) => {
  const f = fixture(t, { homeProfile: true });
  assert.deepEqual(accountInfo({ profile: 'me', home: true }, f.env), { email: 'home@example.com', usage: null });
});

test('an idle profile is its account.json; a profile in a session is its runtime with the usage there', (t) => {
  const f = fixture(t);
  assert.deepEqual(accountInfo({ profile: 'work' }, f.env), { email: null, usage: null });
  const uuid = '00000000-0000-4000-8000-00000000work';
  fs.writeFileSync(
    path.join(f.store, 'profiles', 'work', 'account.json'),
    JSON.stringify({ oauthAccount: { accountUuid: uuid, emailAddress: 'alice@work.example' } }),
  );
  assert.deepEqual(accountInfo({ profile: 'work' }, f.env), { email: 'alice@work.example', usage: null });
  // The usage cache is shared: the home's names the account it belongs to.
  const claudeJson = path.join(f.home, '.claude.json');
  const doc = JSON.parse(fs.readFileSync(claudeJson, 'utf8'));
  fs.writeFileSync(claudeJson, JSON.stringify({ ...doc, cachedUsageUtilization: usageCache(uuid, 62, 30) }));
  const out = spawnSync(BIN, ['acquire'], { input: '{"profile":"work"}', env: f.env });
  const configDir = JSON.parse(out.stdout.toString()).config_dir;
  const expected = { email: 'alice@work.example', usage: { window: 'five_hour', percent: 62 } };
  assert.deepEqual(accountInfo({ profile: 'work', configDir }, f.env), expected);
  assert.deepEqual(accountInfo({ profile: 'work' }, f.env), expected);
});

test("a usage cache of another account, or of none when asked strictly, is not this account's", () => {
  assert.deepEqual(usageFrom({ cachedUsageUtilization: usageCache('a', 10, 95) }, 'a'), { window: 'seven_day', percent: 95 });
  assert.equal(usageFrom({ cachedUsageUtilization: usageCache('b', 10, 95) }, 'a'), null);
  assert.deepEqual(usageFrom({ cachedUsageUtilization: usageCache(null, 10, 5) }, 'a'), { window: 'five_hour', percent: 10 });
  assert.equal(usageFrom({ cachedUsageUtilization: usageCache(null, 10, 5) }, 'a', { strict: true }), null);
  assert.equal(usageFrom({ cachedUsageUtilization: { utilization: { five_hour: { utilization: null } } } }, 'a'), null);
  assert.equal(usageFrom({}, 'a'), null);
});

test('documents that are missing, not JSON or not objects give nothing, and no error', (t) => {
  const f = fixture(t);
  fs.writeFileSync(path.join(f.store, 'profiles', 'work', 'account.json'), '{"oauthAccount":');
  assert.deepEqual(accountInfo({ profile: 'work' }, f.env), { email: null, usage: null });
  fs.writeFileSync(path.join(f.store, 'profiles', 'work', 'account.json'), '[1]');
  assert.deepEqual(accountInfo({ profile: 'work', configDir: path.join(f.root, 'nowhere') }, f.env), { email: null, usage: null });
});
