'use strict';
// End to end in a real VS Code: the packaged extension in code-server, driven through its
// workbench in headless Chromium, against the real clauth-helper.
//
// Run by .ci/run after e2e/install.sh:
//   CLAUTH_HELPER_BIN=target/debug/clauth-helper CLAUTH_VSCODE_E2E=target/vscode-e2e \
//     node --test editors/vscode/e2e/e2e.test.js
// Without code-server, Node 24, chromium or playwright-core (or with CLAUTH_VSCODE_E2E_SKIP set
// to a reason) the test is reported as skipped, with the reason, never as passed. Everything listens on loopback and is stopped by its pid.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const REPO = path.resolve(__dirname, '..', '..', '..');
const EXTENSION = path.resolve(__dirname, '..');
const FIXTURES = path.join(REPO, 'fixtures');
const BIN = process.env.CLAUTH_HELPER_BIN ? path.resolve(process.env.CLAUTH_HELPER_BIN) : null;
const E2E = path.resolve(process.env.CLAUTH_VSCODE_E2E || path.join(REPO, 'target', 'vscode-e2e'));
const NODE24 = path.join(E2E, 'node24', 'node_modules', 'node', 'bin', 'node');
const CODE_SERVER = path.join(E2E, 'code-server', 'node_modules', 'code-server', 'out', 'node', 'entry.js');
const TOOLS = path.join(E2E, 'tools', 'node_modules');
const VSCE = path.join(TOOLS, '@vscode', 'vsce', 'vsce');
// Debian's chromium itself, not its /usr/bin wrapper script (which adds crash-reporter flags).
const CHROMIUM = process.env.CLAUTH_E2E_CHROMIUM || '/usr/lib/chromium/chromium';
const ARTIFACTS = path.join(E2E, 'artifacts');

// Bounds of every wait: generous for a 2-core machine, finite everywhere.
const STARTUP_MS = 120000;
const STEP_MS = 30000;

const missing = [
  [BIN && fs.existsSync(BIN), 'CLAUTH_HELPER_BIN (the clauth-helper binary)'],
  [fs.existsSync(NODE24), `Node 24 (${NODE24})`],
  [fs.existsSync(CODE_SERVER), `code-server (${CODE_SERVER})`],
  [fs.existsSync(VSCE), `@vscode/vsce (${VSCE})`],
  [fs.existsSync(path.join(TOOLS, 'playwright-core')), 'playwright-core'],
  [fs.existsSync(CHROMIUM), `chromium (${CHROMIUM})`],
]
  .filter(([ok]) => !ok)
  .map(([, what]) => what);
// Set by .ci/run when the installer failed: a half-made install is not tested either.
const skipReason = process.env.CLAUTH_VSCODE_E2E_SKIP || (missing.length ? `not installed: ${missing.join(', ')}` : false);

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function run(program, args, options = {}) {
  const out = spawnSync(program, args, { encoding: 'utf8', timeout: STARTUP_MS, ...options });
  assert.equal(out.status, 0, `${program} ${args.join(' ')} failed (${out.status}):\n${out.stdout}\n${out.stderr}`);
  assert.ok(!`${out.stdout}${out.stderr}`.includes('sk-ant-'), 'a token reached an output');
  return out.stdout;
}

async function waitFor(predicate, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A fresh home with its own ~/.claude, a store with `work` and `personal`, clauth-helper on PATH. */
function makeHome(root) {
  const home = path.join(root, 'home');
  fs.cpSync(path.join(FIXTURES, 'home'), home, { recursive: true, verbatimSymlinks: true });
  const bin = path.join(root, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(BIN, path.join(bin, 'clauth-helper'));
  // The extension host gets a login shell's environment, whose /etc/profile sets PATH anew: a
  // user puts clauth-helper on PATH in ~/.profile, and so does this test.
  fs.writeFileSync(path.join(home, '.profile'), `PATH="${bin}:$PATH"\nexport PATH\n`);
  const env = {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: home,
    USER: process.env.USER || 'root',
    LANG: 'C.UTF-8',
    SHELL: '/bin/bash',
  };
  for (const name of ['work', 'personal']) {
    run(BIN, ['profile', 'add', name, '--credentials', '-'], {
      env,
      input: fs.readFileSync(path.join(FIXTURES, 'credentials', `${name}.json`)),
    });
  }
  // What Claude Code leaves after a session: the account of work, and its usage in the shared
  // ~/.claude.json, so the status bar has both to show.
  const uuid = '00000000-0000-4000-8000-00000000work';
  fs.writeFileSync(
    path.join(home, '.clauth', 'profiles', 'work', 'account.json'),
    JSON.stringify({ oauthAccount: { accountUuid: uuid, emailAddress: 'alice@work.example' } }),
    { mode: 0o600 },
  );
  const claudeJson = path.join(home, '.claude.json');
  const doc = JSON.parse(fs.readFileSync(claudeJson, 'utf8'));
  doc.cachedUsageUtilization = {
    fetchedAtMs: Date.now(),
    accountUuid: uuid,
    utilization: { five_hour: { utilization: 62, resets_at: null }, seven_day: { utilization: 20, resets_at: null } },
  };
  fs.writeFileSync(claudeJson, JSON.stringify(doc, null, 2));
  return { home, env };
}

function helperStatus(env) {
  return JSON.parse(run(BIN, ['status'], { env, input: '{}' }));
}

const held = (status, profile) => status.profiles.find((p) => p.name === profile).sessions.filter((s) => s.held);

test('a different account in each window, in a real VS Code', { skip: skipReason, timeout: 15 * 60 * 1000 }, async (t) => {
  const { chromium } = require(path.join(TOOLS, 'playwright-core'));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clauth-vscode-e2e-'));
  // Stopped last started first, and the files removed only after everything is stopped.
  const cleanups = [];
  t.after(async () => {
    for (const fn of cleanups.reverse()) await fn().catch((err) => console.error(`cleanup: ${err.message}`));
    fs.rmSync(root, { recursive: true, force: true });
  });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const { home, env } = makeHome(root);
  const project = path.join(root, 'project');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'README.md'), '# A project\n');

  // Package the extension as a user gets it, and install it.
  const vsix = path.join(E2E, 'clauth-vscode.vsix');
  const node24Path = `${path.dirname(NODE24)}:${process.env.PATH}`;
  run(NODE24, [VSCE, 'package', '--no-dependencies', '--skip-license', '--allow-missing-repository', '--no-rewrite-relative-links', '-o', vsix], {
    cwd: EXTENSION,
    env: { ...process.env, PATH: node24Path },
  });
  const userData = path.join(root, 'user-data');
  const extensions = path.join(root, 'extensions');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  fs.writeFileSync(
    path.join(userData, 'User', 'settings.json'),
    JSON.stringify({
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'workbench.welcomePage.walkthroughs.openOnInstall': false,
      'security.workspace.trust.enabled': false,
      'telemetry.telemetryLevel': 'off',
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'update.mode': 'none',
      'chat.disableAIFeatures': true,
      'workbench.secondarySideBar.defaultVisibility': 'hidden',
      'terminal.integrated.enablePersistentSessions': false,
      'terminal.integrated.defaultProfile.linux': 'bash',
      'terminal.integrated.shellIntegration.enabled': false,
      // The DOM renderer, so the test can read the prompt from the page.
      'terminal.integrated.gpuAcceleration': 'off',
    }),
  );
  const config = path.join(root, 'code-server.yaml');
  fs.writeFileSync(config, 'auth: none\n');
  const common = ['--config', config, '--user-data-dir', userData, '--extensions-dir', extensions];
  run(NODE24, [CODE_SERVER, ...common, '--install-extension', vsix], { env: { ...env, PATH: node24Path } });

  const port = await freePort();
  const server = spawn(
    NODE24,
    [
      CODE_SERVER,
      ...common,
      '--bind-addr', `127.0.0.1:${port}`,
      '--auth', 'none',
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--reconnection-grace-time', '5',
      '--ignore-last-opened',
      project,
    ],
    // Its own process group, so that stopping it by its pid reaches its children too. No
    // extension gallery: nothing is fetched from anywhere but loopback.
    { env: { ...env, PATH: node24Path, EXTENSIONS_GALLERY: '{}' }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let serverLog = '';
  server.stdout.on('data', (d) => (serverLog += d));
  server.stderr.on('data', (d) => (serverLog += d));
  const serverExit = new Promise((resolve) => server.once('exit', resolve));
  cleanups.push(async () => {
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {
      return; // already gone
    }
    const stopped = await Promise.race([serverExit.then(() => true), new Promise((r) => setTimeout(() => r(false), 10000))]);
    if (!stopped) {
      try {
        process.kill(-server.pid, 'SIGKILL');
      } catch {
        // gone in between
      }
    }
  });
  await waitFor(() => serverLog.includes('HTTP server listening'), STARTUP_MS, `code-server listening\n${serverLog}`);

  const browser = await chromium.launchPersistentContext(path.join(root, 'chromium'), {
    executablePath: CHROMIUM,
    headless: true,
    // Chromium keeps its own files (crash reports) under HOME: the test's, not the user's.
    env: { PATH: process.env.PATH, HOME: path.join(root, 'chromium-home') },
    viewport: { width: 1280, height: 800 },
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  let browserOpen = true;
  cleanups.push(async () => {
    if (browserOpen) await browser.close();
  });
  const page = browser.pages()[0] || (await browser.newPage());
  const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, name) });
  try {
    await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(project)}`, { timeout: STARTUP_MS });
    const statusItem = page.locator('.statusbar-item', { hasText: 'Claude:' }).first();
    await statusItem.waitFor({ timeout: STARTUP_MS });
    await waitFor(async () => (await statusItem.innerText()).includes('no account'), STARTUP_MS, 'the status bar without an account');

    const palette = async (command) => {
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor({ state: 'visible', timeout: STEP_MS });
      await input.fill(`>${command}`);
      await page.locator('.quick-input-list .monaco-list-row', { hasText: command }).first().waitFor({ timeout: STEP_MS });
      await page.keyboard.press('Enter');
    };
    const chooseProfile = async (profile, screenshot) => {
      await palette('Claude: Choose Account for This Window');
      const row = page.locator('.quick-input-list .monaco-list-row', { hasText: profile }).first();
      await row.waitFor({ timeout: STEP_MS });
      if (screenshot) await shot(screenshot);
      await page.locator('.quick-input-widget input').fill(profile);
      await page.keyboard.press('Enter');
      await waitFor(async () => (await statusItem.innerText()).includes(`Claude: ${profile}`), STEP_MS, `the status bar showing ${profile}`);
    };
    let terminals = 0;
    const terminalWrites = async (file) => {
      await palette('Terminal: Create New Terminal');
      terminals += 1;
      await waitFor(async () => (await page.locator('.terminal-wrapper').count()) >= terminals, STEP_MS, 'a new terminal');
      // The shell is ready once it has drawn its prompt.
      await waitFor(
        async () => /[$#]\s*$/m.test(await page.locator('.xterm-rows').last().innerText({ timeout: 1000 }).catch(() => '')),
        STEP_MS,
        'the prompt of the new terminal',
      );
      await page.locator('.xterm-screen').last().click();
      await page.keyboard.type(`printf '%s|%s\\n' "$CLAUDE_CONFIG_DIR" "$CLAUTH_PROFILE" > ${file}; echo "account: $CLAUTH_PROFILE"`);
      await page.keyboard.press('Enter');
      return waitFor(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').endsWith('\n') && fs.readFileSync(file, 'utf8'), STEP_MS, `the terminal writing ${file}`);
    };

    // Choose work: a session held by the window's serve, and the status bar shows the account.
    await chooseProfile('work', 'pick.png');
    assert.equal((await statusItem.innerText()).trim(), 'Claude: work · alice@work.example · 62 %');
    const afterWork = helperStatus(env);
    assert.equal(held(afterWork, 'work').length, 1);
    const workRuntime = afterWork.profiles.find((p) => p.name === 'work').runtime.config_dir;

    // A new terminal runs under it.
    assert.equal(await terminalWrites(path.join(root, 'work.txt')), `${workRuntime}|work\n`);
    await shot('workbench.png');

    // Switch: a new terminal follows; the first terminal is still open, so work stays held.
    await chooseProfile('personal');
    const afterSwitch = helperStatus(env);
    assert.equal(held(afterSwitch, 'personal').length, 1);
    assert.equal(held(afterSwitch, 'work').length, 1, 'work was released while a terminal of it was open');
    const personalRuntime = afterSwitch.profiles.find((p) => p.name === 'personal').runtime.config_dir;
    assert.notEqual(personalRuntime, workRuntime);
    assert.equal(await terminalWrites(path.join(root, 'personal.txt')), `${personalRuntime}|personal\n`);

    // Once the terminals are gone, work's session goes too; personal stays the window's.
    await palette('Terminal: Kill All Terminals');
    await waitFor(() => held(helperStatus(env), 'work').length === 0, STEP_MS, 'the release of work');
    assert.equal(held(helperStatus(env), 'personal').length, 1);
    await shot('after-switch.png');
  } catch (err) {
    await shot('failure.png').catch(() => {});
    console.error(`${err.stack}\n--- code-server\n${serverLog.slice(-4000)}`);
    throw err;
  }

  // Closing the page ends the window's extension host, its serve, and the session.
  await browser.close();
  browserOpen = false;
  await waitFor(
    () => helperStatus(env).profiles.every((p) => p.sessions.length === 0),
    STARTUP_MS,
    'every session released after the page closed',
  );
  assert.equal(fs.existsSync(path.join(home, '.clauth', 'runtimes', 'personal')), false);
});
