'use strict';
// The status bar, the account pick and the notifications, from real and written responses.

const test = require('node:test');
const assert = require('node:assert/strict');

const status = require('../src/status.js');
const { fixture } = require('./support.js');

test('the status bar names the profile, marks the home profile, and adds account and usage when known', () => {
  assert.equal(status.statusText(null), '$(account) Claude: no account');
  assert.equal(status.statusText({ profile: 'work' }), '$(account) Claude: work');
  assert.equal(
    status.statusText({ profile: 'work', email: 'alice@work.example', usage: { window: 'five_hour', percent: 61.6 } }),
    '$(account) Claude: work · alice@work.example · 62 %',
  );
  assert.equal(status.statusText({ profile: 'me', home: true, email: 'me@example.com' }), '$(account) Claude: me (home) · me@example.com');
  assert.equal(status.statusText(null, { problem: 'clauth-helper not found' }), '$(warning) Claude: clauth-helper not found');
});

test('the tooltip tells the runtime, the session and the usage window', () => {
  const tip = status.statusTooltip({
    profile: 'work',
    session: 's-1',
    configDir: '/store/runtimes/work/config',
    linkMode: 'real',
    usage: { window: 'seven_day', percent: 91 },
  });
  assert.match(tip, /work/);
  assert.match(tip, /\/store\/runtimes\/work\/config \(real mode\)/);
  assert.match(tip, /s-1/);
  assert.match(tip, /91 % of the weekly limit/);
  assert.match(status.statusTooltip({ profile: 'me', home: true, session: 's-2' }), /~\/\.claude/);
});

test('the pick has every profile of status with its login state, sessions and account', (t) => {
  const f = fixture(t, { homeProfile: true });
  f.run(['acquire'], JSON.stringify({ profile: 'work' }));
  const response = f.status();
  const work = response.profiles.find((p) => p.name === 'work');
  const items = status.pickItems(response, {
    current: 'work',
    heldHere: new Set(),
    info: (p) => (p.name === 'work' ? { email: 'alice@work.example', usage: { window: 'five_hour', percent: 92 } } : {}),
    now: 0,
  });
  assert.deepEqual(items.map((i) => i.profile), ['me', 'personal', 'work']);
  const [me, personal, w] = items;
  assert.equal(me.label, 'me (home)');
  assert.equal(personal.label, 'personal');
  assert.equal(personal.detail, 'logged in (max)');
  assert.equal(w.label, '$(check) work');
  assert.equal(w.description, 'alice@work.example');
  assert.equal(w.detail, 'logged in (team) · in use: 1 other session · 92 % of the 5-hour limit');
  const mine = status.pickItems(response, { heldHere: new Set([work.sessions[0].session]), now: 0 });
  assert.match(mine[2].detail, /in use: this window$/);
});

test('login states: none, expired, with and without a plan', () => {
  assert.equal(status.loginState({ credentials: { present: false } }), 'not logged in: /login in a session');
  assert.equal(status.loginState({ home: true, credentials: { present: false } }), 'no login in ~/.claude');
  assert.equal(
    status.loginState({ credentials: { present: true, expires_at: 10, subscription_type: null } }, 20),
    'logged in, access token expired: refreshed when used',
  );
  assert.equal(status.loginState({ credentials: { present: true, expires_at: 30, subscription_type: 'pro' } }, 20), 'logged in (pro)');
});

test('serve events become short notices; events without news give none', () => {
  const report = { credentials_saved: false, conflicts: [], adopted: ['projects'] };
  assert.equal(status.eventNotice({ event: 'synced', ...report }, { profile: 'work' }), null);
  assert.deepEqual(status.eventNotice({ event: 'synced', ...report, credentials_saved: true }, { profile: 'work' }), {
    level: 'info',
    text: 'Claude (work): the refreshed login was saved to the profile.',
    actions: [],
  });
  assert.match(
    status.eventNotice({ event: 'synced', ...report, credentials_rejected: 'the session wrote back a login this profile already replaced' }, { profile: 'work' }).text,
    /already replaced/,
  );
  assert.match(status.eventNotice({ event: 'synced', ...report, conflicts: ['a.md'] }, { profile: 'work' }).text, /both versions were kept \(a\.md\)/);
  const ended = status.eventNotice({ event: 'session_ended', session: 's' }, { profile: 'work', current: true });
  assert.deepEqual(ended.actions, ['Choose Account']);
  assert.equal(status.eventNotice({ event: 'session_ended' }, { profile: 'work', current: false }), null);
  assert.equal(
    status.eventNotice({ event: 'tick_failed', error: { code: 'io', message: 'disk full' } }, { profile: 'work' }).text,
    'Claude (work): saving what the session wrote failed (io): disk full',
  );
  assert.equal(status.eventNotice({ event: 'something_new', session: 's' }, { profile: 'work' }), null);
});

test('the usage event, not built yet, is read whichever way it counts; without a figure it is ignored', () => {
  const notice = status.eventNotice({ event: 'usage', session: 's', window: 'five_hour', utilization: 92 }, { profile: 'work' });
  assert.deepEqual(notice, { level: 'warning', text: 'work is at 92 % of its 5-hour limit: switch?', actions: ['Switch Account'] });
  assert.equal(
    status.eventNotice({ event: 'usage', limit: 'seven_day', utilization: 0.95 }, { profile: 'work' }).text,
    'work is at 95 % of its weekly limit: switch?',
  );
  assert.equal(status.eventNotice({ event: 'usage', kind: 'seven_day_opus', percent: 90.4 }, { profile: 'w' }).text, 'w is at 90 % of its weekly Opus limit: switch?');
  assert.equal(status.eventNotice({ event: 'usage', window: 'five_hour' }, { profile: 'w' }), null);
  assert.deepEqual(status.usageOfEvent({ event: 'usage', window: 'five_hour', utilization: 92 }), { window: 'five_hour', percent: 92 });
  assert.equal(status.usageOfEvent({ event: 'usage' }), null);
  assert.equal(status.windowName('some_new_window'), 'some new window');
});
