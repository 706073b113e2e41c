'use strict';
// The client glue: a window's sessions through a real `clauth-helper serve`.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { WindowAccount } = require('../src/window.js');
const { BIN, fixture, waitFor, within, assertNoToken } = require('./support.js');

function windowOf(t, f, options = {}) {
  const w = new WindowAccount({ binary: BIN, env: f.env, ...options });
  const events = [];
  w.on('helper-event', (ev, where) => {
    assertNoToken(ev);
    events.push({ ev, where });
  });
  const changes = [];
  w.on('change', (c) => changes.push(c && c.profile));
  f.defer(() => w.dispose());
  return { w, events, changes };
}

test('choosing a profile acquires a session held by the window and gives the terminal environment', async (t) => {
  const f = fixture(t);
  const { w, changes } = windowOf(t, f);
  const current = await w.choose('work');
  assert.equal(current.profile, 'work');
  assert.equal(current.home, false);
  assert.equal(current.configDir, path.join(f.store, 'runtimes', 'work', 'config'));
  assert.ok(fs.existsSync(path.join(current.configDir, '.credentials.json')));
  assert.equal(current.terminalEnv.set.CLAUDE_CONFIG_DIR, current.configDir);
  assert.equal(current.terminalEnv.set.CLAUTH_PROFILE, 'work');
  assert.ok(current.terminalEnv.blank.includes('ANTHROPIC_API_KEY'));
  assert.deepEqual(changes, ['work']);
  const [profile] = f.status().profiles.filter((p) => p.name === 'work');
  assert.deepEqual(profile.sessions.map((s) => s.session), [current.session]);
  assert.equal(profile.sessions[0].held, true);
});

test('choosing another profile releases the first, and the runtime goes with it', async (t) => {
  const f = fixture(t);
  const { w, changes } = windowOf(t, f);
  const work = await w.choose('work');
  const personal = await w.choose('personal');
  assert.equal(w.current.profile, 'personal');
  assert.deepEqual(f.sessionsOf('work'), []);
  assert.equal(fs.existsSync(work.configDir), false);
  assert.deepEqual(f.sessionsOf('personal'), [personal.session]);
  assert.deepEqual(w.heldSessions(), [personal.session]);
  assert.deepEqual(changes, ['work', 'personal']);
});

test('a session stays held while a terminal opened under it is open', async (t) => {
  const f = fixture(t);
  const { w } = windowOf(t, f);
  const work = await w.choose('work');
  const terminal = { name: 'bash' };
  w.terminalOpened(terminal);
  await w.choose('personal');
  // Claude Code may still run in that terminal: the runtime must not be torn down under it.
  assert.deepEqual(f.sessionsOf('work'), [work.session]);
  assert.ok(fs.existsSync(work.configDir));
  await w.terminalClosed({ name: 'another terminal' });
  assert.deepEqual(f.sessionsOf('work'), [work.session]);
  await w.terminalClosed(terminal);
  assert.deepEqual(f.sessionsOf('work'), []);
  assert.equal(fs.existsSync(work.configDir), false);
  assert.equal(w.current.profile, 'personal');
});

test('choosing a profile again takes back the session kept for its terminals', async (t) => {
  const f = fixture(t);
  const { w } = windowOf(t, f);
  const work = await w.choose('work');
  const terminal = {};
  w.terminalOpened(terminal);
  await w.choose('personal');
  const again = await w.choose('work');
  assert.equal(again.session, work.session);
  assert.deepEqual(f.sessionsOf('personal'), []);
  // The terminal still belongs to the session, which is current again: closing it keeps it.
  await w.terminalClosed(terminal);
  assert.deepEqual(f.sessionsOf('work'), [work.session]);
});

test('choosing no account releases the session; choosing the same profile twice acquires once', async (t) => {
  const f = fixture(t);
  const { w, changes } = windowOf(t, f);
  const first = await w.choose('work');
  const second = await w.choose('work');
  assert.equal(second.session, first.session);
  await w.clear();
  assert.equal(w.current, null);
  assert.deepEqual(f.sessionsOf('work'), []);
  assert.deepEqual(changes, ['work', null]);
});

test('a session released by another program ends the window account, with an event', async (t) => {
  const f = fixture(t);
  const { w, events, changes } = windowOf(t, f);
  const work = await w.choose('work');
  f.run(['release'], JSON.stringify({ session: work.session }));
  await waitFor(() => events.some((e) => e.ev.event === 'session_ended'), 10000, 'session_ended');
  const ended = events.find((e) => e.ev.event === 'session_ended');
  assert.deepEqual(ended.where, { profile: 'work', current: true });
  assert.equal(w.current, null);
  assert.deepEqual(changes, ['work', null]);
  assert.deepEqual(w.heldSessions(), []);
});

test('a refresh written into the runtime comes back as a synced event naming the profile', async (t) => {
  const f = fixture(t);
  const { w, events } = windowOf(t, f);
  const work = await w.choose('work');
  const refreshed = fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'fixtures', 'credentials', 'work-refreshed.json'));
  const file = path.join(work.configDir, '.credentials.json');
  const tmp = path.join(work.configDir, '.credentials.json.tmp-test');
  fs.writeFileSync(tmp, refreshed);
  fs.renameSync(tmp, file); // the way Claude Code writes it
  await waitFor(() => events.some((e) => e.ev.event === 'synced' && e.ev.credentials_saved), 15000, 'synced');
  const synced = events.find((e) => e.ev.event === 'synced');
  assert.deepEqual(synced.where, { profile: 'work', current: true });
  assert.deepEqual(fs.readFileSync(path.join(f.store, 'profiles', 'work', 'credentials.json')), refreshed);
});

test('closing the window ends serve, and every session it held', async (t) => {
  const f = fixture(t);
  const { w } = windowOf(t, f);
  await w.choose('work');
  w.terminalOpened({});
  await w.choose('personal');
  assert.equal(w.heldSessions().length, 2);
  await w.dispose();
  const held = f.status().profiles.flatMap((p) => p.sessions);
  assert.deepEqual(held, []);
  await assert.rejects(w.choose('work'), { code: 'helper_exited' });
});

test('a serve process that dies leaves the window without an account and says so', async (t) => {
  const f = fixture(t);
  const { w, changes } = windowOf(t, f);
  await w.choose('work');
  const stopped = new Promise((resolve) => w.once('stopped', resolve));
  const pid = w.servePid;
  assert.ok(pid > 0, 'no serve process');
  process.kill(pid, 'SIGKILL');
  const info = await within(stopped, 10000, "'stopped'");
  assert.equal(info.signal, 'SIGKILL');
  assert.equal(w.current, null);
  assert.deepEqual(changes, ['work', null]);
  // The window starts a new serve process for the next choice.
  const again = await w.choose('personal');
  assert.deepEqual(f.sessionsOf('personal'), [again.session]);
});

test('an unknown profile and a missing binary are errors with their codes', async (t) => {
  const f = fixture(t);
  const { w } = windowOf(t, f);
  await assert.rejects(w.choose('nobody'), { code: 'profile_not_found' });
  assert.equal(w.current, null);
  const missing = new WindowAccount({ binary: path.join(f.root, 'no-such-helper'), env: f.env });
  f.defer(() => missing.dispose());
  await assert.rejects(missing.choose('work'), { code: 'helper_not_found' });
});

test('the home profile blanks CLAUDE_CONFIG_DIR instead of setting it', async (t) => {
  const f = fixture(t, { homeProfile: true });
  const { w } = windowOf(t, f);
  const me = await w.choose('me');
  assert.equal(me.home, true);
  assert.equal(me.terminalEnv.set.CLAUDE_CONFIG_DIR, undefined);
  assert.ok(me.terminalEnv.blank.includes('CLAUDE_CONFIG_DIR'));
  assert.equal(me.terminalEnv.set.CLAUTH_PROFILE, 'me');
});
