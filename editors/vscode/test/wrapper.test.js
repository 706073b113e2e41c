'use strict';
// The wrapper the official Claude Code extension runs: found from the window that started it,
// through the real `clauth-helper run`.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync, spawn } = require('node:child_process');

const wrapper = require('../src/wrapper.js');
const { fixture, BIN, within } = require('./support.js');

/** A stand-in for Claude Code that prints what it was run with. */
function fakeClaude(dir) {
  const file = path.join(dir, 'claude');
  fs.writeFileSync(
    file,
    '#!/bin/sh\nprintf "config=%s\\nkey=%s\\nargs=%s\\n" "${CLAUDE_CONFIG_DIR-unset}" "${ANTHROPIC_API_KEY-unset}" "$*"\n',
    { mode: 0o755 },
  );
  return file;
}

function setup(t) {
  const f = fixture(t);
  const storage = path.join(f.root, 'storage');
  fs.mkdirSync(storage);
  const bin = path.join(f.root, 'bin');
  fs.mkdirSync(bin);
  const claude = fakeClaude(bin);
  const paths = wrapper.installWrapper(storage);
  const env = { ...f.env, PATH: `${bin}:${process.env.PATH}`, ANTHROPIC_API_KEY: 'inherited' };
  return { f, storage, claude, paths, env };
}

/** Runs the wrapper as a child of this process, which stands for the extension host. */
function runWrapper(s, args) {
  const out = spawnSync(s.paths.wrapper, args, { env: s.env });
  assert.equal(out.status, 0, `wrapper failed: ${out.stderr}`);
  return out.stdout.toString();
}

test('the wrapper setting is the one the official extension declares', () => {
  const declares = (...names) => ({
    contributes: { configuration: [{ properties: Object.fromEntries(names.map((n) => [n, { type: 'string' }])) }] },
  });
  assert.equal(wrapper.wrapperSetting(declares('claudeCode.claudeProcessWrapper', 'claudeCode.executablePath')), 'claudeCode.claudeProcessWrapper');
  assert.equal(wrapper.wrapperSetting(declares('claudeCode.executablePath')), 'claudeCode.executablePath');
  assert.equal(wrapper.wrapperSetting({ contributes: { configuration: { properties: { 'claudeCode.claudeProcessWrapper': {} } } } }), 'claudeCode.claudeProcessWrapper');
  assert.equal(wrapper.wrapperSetting(declares('claudeCode.environmentVariables')), null);
  assert.equal(wrapper.wrapperSetting(undefined), null);
});

test('started from a window with an account, Claude Code runs in a session of that profile', (t) => {
  const s = setup(t);
  wrapper.setWindowState(s.storage, process.pid, { profile: 'work', helper: BIN, clauthHome: s.f.store });
  const stat = fs.statSync(path.join(s.paths.stateDir, String(process.pid)));
  assert.equal(stat.mode & 0o777, 0o600);
  assert.equal(fs.statSync(s.paths.wrapper).mode & 0o777, 0o700);
  // As claudeCode.claudeProcessWrapper calls it: the program first.
  assert.equal(
    runWrapper(s, [s.claude, '--output-format', 'stream-json']),
    `config=${s.f.store}/runtimes/work/config\nkey=unset\nargs=--output-format stream-json\n`,
  );
  // As an executable path: only the arguments; Claude Code is found on PATH.
  assert.equal(runWrapper(s, ['-p', 'hi']), `config=${s.f.store}/runtimes/work/config\nkey=unset\nargs=-p hi\n`);
  // `run` released its session when Claude Code exited.
  assert.deepEqual(s.f.sessionsOf('work'), []);
});

test('started from a window without an account, Claude Code runs unchanged', (t) => {
  const s = setup(t);
  assert.equal(runWrapper(s, [s.claude, 'a b']), 'config=unset\nkey=inherited\nargs=a b\n');
  wrapper.setWindowState(s.storage, process.pid, { profile: 'work', helper: BIN });
  wrapper.setWindowState(s.storage, process.pid, null);
  assert.equal(runWrapper(s, ['x']), 'config=unset\nkey=inherited\nargs=x\n');
});

test('the window is found through the processes between it and the wrapper', async (t) => {
  const s = setup(t);
  wrapper.setWindowState(s.storage, process.pid, { profile: 'personal', helper: BIN });
  // The official extension may start the wrapper through a shell or two.
  const child = spawn('sh', ['-c', `sh -c '"$0" "$1" arg; :' ${s.paths.wrapper} ${s.claude}; :`], { env: s.env });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await within(new Promise((resolve) => child.on('close', resolve)), 20000, 'the wrapper');
  assert.equal(code, 0);
  assert.equal(out, `config=${s.f.store}/runtimes/personal/config\nkey=unset\nargs=arg\n`);
});

test('a wrapper configured before is run in turn, with the program and its arguments', (t) => {
  const s = setup(t);
  const chain = path.join(s.f.root, 'bin', 'earlier-wrapper');
  fs.writeFileSync(chain, '#!/bin/sh\necho "earlier wrapper: $1" | sed "s#.*/#earlier wrapper: #"\nexec "$@"\n', { mode: 0o755 });
  const paths = wrapper.installWrapper(s.storage, { chain });
  wrapper.setWindowState(s.storage, process.pid, { profile: 'work', helper: BIN });
  const out = spawnSync(paths.wrapper, [s.claude, 'z'], { env: s.env }).stdout.toString();
  assert.equal(out, `earlier wrapper: claude\nconfig=${s.f.store}/runtimes/work/config\nkey=unset\nargs=z\n`);
});

test('values are quoted for the shell, and state files of gone windows are swept', (t) => {
  const s = setup(t);
  assert.equal(wrapper.shellQuote("it's $HOME"), `'it'\\''s $HOME'`);
  wrapper.setWindowState(s.storage, process.pid, { profile: "o'dd", helper: BIN });
  const text = fs.readFileSync(path.join(s.paths.stateDir, String(process.pid)), 'utf8');
  const out = spawnSync('sh', ['-c', `. "$0"; printf %s "$profile"`, path.join(s.paths.stateDir, String(process.pid))]);
  assert.equal(out.stdout.toString(), "o'dd", text);
  fs.writeFileSync(path.join(s.paths.stateDir, '999999999'), 'profile=x\n');
  fs.writeFileSync(path.join(s.paths.stateDir, 'junk'), '');
  wrapper.sweepWindowStates(s.storage, wrapper.processAlive);
  assert.deepEqual(fs.readdirSync(s.paths.stateDir), [String(process.pid)]);
});
