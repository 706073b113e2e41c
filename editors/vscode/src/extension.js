'use strict';
// The VS Code side: status bar, commands, terminals' environment and notifications. Everything
// that does not need VS Code lives in the modules beside this one.

const vscode = require('vscode');
const { WindowAccount } = require('./window.js');
const { applyToCollection } = require('./envmap.js');
const { accountInfo } = require('./account.js');
const status = require('./status.js');
const wrapper = require('./wrapper.js');

const DEFAULT_PROFILE_KEY = 'clauth.defaultProfile';
const ROUTED_KEY = 'clauth.routedOfficialExtension'; // {setting, target, previous}
const OFFER_DECLINED_KEY = 'clauth.officialExtensionOfferDeclined';
const PIN_BUTTON_TOOLTIP = 'Choose, and use by default in this workspace';

let state = null;

function helperPath() {
  const configured = vscode.workspace.getConfiguration('clauth').get('helperPath');
  return typeof configured === 'string' && configured.trim() ? configured.trim() : 'clauth-helper';
}

function activate(context) {
  const collection = context.environmentVariableCollection;
  // A session ends with the window: a reloaded window must not start terminals in a runtime that
  // is gone before the extension has chosen again.
  collection.persistent = false;
  collection.clear();

  const item = vscode.window.createStatusBarItem('clauth.account', vscode.StatusBarAlignment.Left, 100);
  item.name = 'Claude Account';
  item.command = 'clauth.pickAccount';
  context.subscriptions.push(item);

  const account = new WindowAccount({ binary: helperPath(), env: process.env });
  state = { context, collection, item, account, usage: null, problem: null, warned: new Set() };

  account.on('change', () => onChange());
  account.on('helper-event', (event, where) => onHelperEvent(event, where));
  account.on('stopped', (info) => {
    const how = info.signal ? `was killed by ${info.signal}` : `exited with status ${info.code}`;
    setProblem('stopped', `clauth-helper serve ${how}`);
    vscode.window
      .showErrorMessage(`Claude: clauth-helper serve ${how}; this window has no account now.`, 'Choose Account')
      .then((choice) => choice && vscode.commands.executeCommand('clauth.pickAccount'));
  });
  account.on('failure', (err) => showError('releasing a session failed', err));

  context.subscriptions.push(
    vscode.commands.registerCommand('clauth.pickAccount', () => pickAccount()),
    vscode.commands.registerCommand('clauth.openClaude', () => openClaude()),
    vscode.commands.registerCommand('clauth.releaseAccount', () => releaseAccount()),
    vscode.commands.registerCommand('clauth.forgetDefault', () =>
      context.workspaceState.update(DEFAULT_PROFILE_KEY, undefined),
    ),
    vscode.commands.registerCommand('clauth.routeOfficialExtension', () => routeOfficialExtension()),
    vscode.commands.registerCommand('clauth.unrouteOfficialExtension', () => unrouteOfficialExtension()),
    vscode.window.onDidOpenTerminal((t) => account.terminalOpened(t)),
    vscode.window.onDidCloseTerminal((t) => account.terminalClosed(t)),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('clauth.helperPath')) account.setBinary(helperPath());
    }),
    { dispose: () => setWindowState(null) },
  );

  try {
    wrapper.sweepWindowStates(storageDir(), wrapper.processAlive);
  } catch {
    // Only housekeeping; a state file of a dead window is never found by a live wrapper.
  }
  render();
  item.show();
  start();
}

async function start() {
  const { account, context } = state;
  const profile = context.workspaceState.get(DEFAULT_PROFILE_KEY);
  try {
    if (profile) await account.choose(profile);
    else await account.status();
    setProblem(null);
  } catch (err) {
    problemFrom(err);
    if (profile && err.code === 'profile_not_found') {
      vscode.window.showWarningMessage(`Claude: the default account of this workspace, ${profile}, is no profile any more.`);
    }
  }
}

function deactivate() {
  if (!state) return undefined;
  const { account } = state;
  setWindowState(null);
  state = null;
  return account.dispose();
}

function storageDir() {
  return state.context.globalStorageUri.fsPath;
}

function problemFrom(err) {
  if (err && err.code === 'helper_not_found') {
    setProblem('clauth-helper not found', `${err.message}. Install it, or set clauth.helperPath.`);
  } else {
    setProblem('error', err && err.message ? err.message : String(err));
  }
}

function setProblem(problem, detail) {
  state.problem = problem ? { problem, detail } : null;
  render();
}

function currentView() {
  const current = state.account.current;
  if (!current) return null;
  const info = accountInfo(current, process.env);
  return { ...current, email: info.email, usage: state.usage || info.usage };
}

function render() {
  if (!state) return;
  const view = currentView();
  const problem = state.problem && !view ? state.problem : null;
  state.item.text = status.statusText(view, problem || {});
  state.item.tooltip = status.statusTooltip(view, problem || {});
  state.item.backgroundColor = problem ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
}

function onChange() {
  const current = state.account.current;
  state.usage = null;
  applyToCollection(
    state.collection,
    current ? current.terminalEnv : null,
    current ? new vscode.MarkdownString(`Runs under the Claude account **${current.profile}** (clauth-helper)`) : undefined,
  );
  setWindowState(current ? { profile: current.profile } : null);
  if (current) state.problem = null;
  render();
}

function setWindowState(window) {
  if (!state) return;
  try {
    const routed = state.context.globalState.get(ROUTED_KEY);
    if (!routed && window) return;
    wrapper.setWindowState(
      storageDir(),
      process.pid,
      window ? { profile: window.profile, helper: resolvedHelper(), clauthHome: process.env.CLAUTH_HOME || null } : null,
    );
  } catch (err) {
    showError('the Claude Code extension cannot be told the account', err);
  }
}

// The wrapper runs outside the extension host's PATH lookups, so it gets an absolute path when
// one can be found.
function resolvedHelper() {
  const binary = helperPath();
  if (binary.includes('/')) return binary;
  const path = require('node:path');
  const fs = require('node:fs');
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, binary);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return binary;
}

function onHelperEvent(event, where) {
  if (event.event === 'usage' && where.current) {
    state.usage = status.usageOfEvent(event);
    render();
  }
  if (event.event === 'synced') render(); // the account document may have changed
  if (event.event === 'tick_failed') {
    // Serve ticks every second: one notice per session and error code is enough.
    const key = `${event.session}:${event.error && event.error.code}`;
    if (state.warned.has(key)) return;
    state.warned.add(key);
  }
  const notice = status.eventNotice(event, where);
  if (!notice) return;
  const shown =
    notice.level === 'warning'
      ? vscode.window.showWarningMessage(notice.text, ...notice.actions)
      : vscode.window.showInformationMessage(notice.text, ...notice.actions);
  shown.then((choice) => {
    if (choice) vscode.commands.executeCommand('clauth.pickAccount');
  });
}

function showError(what, err) {
  const message = err && err.message ? err.message : String(err);
  const code = err && err.code ? ` [${err.code}]` : '';
  vscode.window.showErrorMessage(`Claude: ${what}${code}: ${message}`);
}

async function pickAccount() {
  const { account, context } = state;
  let response;
  try {
    response = await account.status();
    setProblem(null);
  } catch (err) {
    problemFrom(err);
    showError('cannot list the profiles', err);
    return;
  }
  const current = account.current;
  const held = new Set(account.heldSessions());
  const items = status.pickItems(response, {
    info: (p) => accountInfo({ profile: p.name, home: p.home, configDir: p.runtime && p.runtime.config_dir }, process.env),
    current: current ? current.profile : null,
    heldHere: held,
  });
  const pin = { iconPath: new vscode.ThemeIcon('pin'), tooltip: PIN_BUTTON_TOOLTIP };
  for (const i of items) i.buttons = [pin];
  if (!items.length) {
    const choice = await vscode.window.showInformationMessage(
      'Claude: clauth-helper has no profiles yet. Make one in a terminal: clauth-helper profile add NAME --from-claude',
      'Open Terminal',
    );
    if (choice) vscode.window.createTerminal({ name: 'clauth-helper' }).show();
    return;
  }
  if (current) {
    items.push({ label: '', kind: vscode.QuickPickItemKind.Separator });
    items.push({ label: '$(circle-slash) No account', detail: 'Terminals opened from now on use your default login', profile: null });
  }
  const picked = await new Promise((resolve) => {
    const qp = vscode.window.createQuickPick();
    qp.title = 'Claude: Choose Account for This Window';
    qp.placeholder = 'The account new terminals of this window run under';
    qp.matchOnDescription = true;
    qp.matchOnDetail = true;
    qp.items = items;
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      resolve(value);
      qp.dispose();
    };
    qp.onDidAccept(() => finish(qp.selectedItems[0] ? { item: qp.selectedItems[0], pin: false } : null));
    qp.onDidTriggerItemButton((e) => finish({ item: e.item, pin: true }));
    qp.onDidHide(() => finish(null));
    qp.show();
  });
  if (!picked) return;
  if (picked.item.profile === null) {
    await releaseAccount();
    return;
  }
  await chooseProfile(picked.item.profile);
  if (picked.pin) await context.workspaceState.update(DEFAULT_PROFILE_KEY, picked.item.profile);
}

async function chooseProfile(profile) {
  try {
    await state.account.choose(profile);
  } catch (err) {
    problemFrom(err);
    showError(`cannot use ${profile}`, err);
    return false;
  }
  offerOfficialExtension();
  return true;
}

async function releaseAccount() {
  try {
    await state.account.clear();
  } catch (err) {
    showError('releasing the session failed', err);
  }
}

async function openClaude() {
  if (!state.account.current) {
    await pickAccount();
    if (!state.account.current) return;
  }
  const { profile } = state.account.current;
  const terminal = vscode.window.createTerminal({ name: `Claude (${profile})` });
  terminal.show();
  terminal.sendText('claude');
}

// The official extension, opt-in.

function officialExtension() {
  const ext = vscode.extensions.getExtension(wrapper.OFFICIAL_EXTENSION_ID);
  if (!ext) return null;
  const setting = wrapper.wrapperSetting(ext.packageJSON);
  return setting ? { ext, setting } : null;
}

async function offerOfficialExtension() {
  const { context } = state;
  if (process.platform === 'win32') return;
  if (!vscode.workspace.getConfiguration('clauth').get('offerOfficialExtension')) return;
  if (context.globalState.get(ROUTED_KEY) || context.globalState.get(OFFER_DECLINED_KEY)) return;
  if (!officialExtension()) return;
  const choice = await vscode.window.showInformationMessage(
    "Claude: the Claude Code extension still uses your default login in this window. Make it use this window's account?",
    'Explain and Set Up…',
    'Not Now',
    "Don't Ask Again",
  );
  if (choice === "Don't Ask Again") await context.globalState.update(OFFER_DECLINED_KEY, true);
  if (choice === 'Explain and Set Up…') await routeOfficialExtension();
}

async function routeOfficialExtension() {
  const { context } = state;
  if (process.platform === 'win32') {
    vscode.window.showWarningMessage('Claude: routing the Claude Code extension needs a POSIX shell; it is not available on Windows yet.');
    return;
  }
  const official = officialExtension();
  if (!official) {
    vscode.window.showWarningMessage(
      `Claude: the Claude Code extension (${wrapper.OFFICIAL_EXTENSION_ID}) is not installed, or has none of the settings ${wrapper.WRAPPER_SETTINGS.join(', ')}.`,
    );
    return;
  }
  const paths = wrapper.wrapperPaths(storageDir());
  const userChoice = 'User Settings (every window)';
  const workspaceChoice = 'Workspace Settings (.vscode/settings.json)';
  const hasWorkspace = !!vscode.workspace.workspaceFolders;
  const choice = await vscode.window.showInformationMessage(
    'Make the Claude Code extension use the account of each window?',
    {
      modal: true,
      detail:
        `This sets ${official.setting} to a small script, ${paths.wrapper}. ` +
        "When the Claude Code extension starts Claude Code, the script finds the window it came from and, if that window has chosen an account here, " +
        'runs Claude Code through "clauth-helper run PROFILE"; in a window without an account it runs Claude Code unchanged. ' +
        'A value the setting had is kept and run in turn. Claude Code conversations already open keep their account; new ones use the window\'s.\n\n' +
        'User settings change no file in your repository. Workspace settings write the setting into this workspace (for a folder: .vscode/settings.json in it).\n\n' +
        'Undo: "Claude: Stop Routing the Claude Code Extension Through clauth-helper" puts the setting back as it was.',
    },
    userChoice,
    ...(hasWorkspace ? [workspaceChoice] : []),
  );
  if (!choice) return;
  const target = choice === userChoice ? vscode.ConfigurationTarget.Global : vscode.ConfigurationTarget.Workspace;
  const config = vscode.workspace.getConfiguration();
  const inspected = config.inspect(official.setting) || {};
  const previous = target === vscode.ConfigurationTarget.Global ? inspected.globalValue : inspected.workspaceValue;
  const chain = typeof previous === 'string' && previous && previous !== paths.wrapper ? previous : null;
  try {
    wrapper.installWrapper(storageDir(), { chain });
    await config.update(official.setting, paths.wrapper, target);
  } catch (err) {
    showError('cannot set up the Claude Code extension', err);
    return;
  }
  await context.globalState.update(ROUTED_KEY, {
    setting: official.setting,
    target: target === vscode.ConfigurationTarget.Global ? 'user' : 'workspace',
    previous: previous === paths.wrapper ? undefined : previous,
  });
  setWindowState(state.account.current ? { profile: state.account.current.profile } : null);
  vscode.window.showInformationMessage(
    `Claude: new Claude Code conversations of the Claude Code extension now run under the account of their window (${official.setting}).`,
  );
}

async function unrouteOfficialExtension() {
  const { context } = state;
  const routed = context.globalState.get(ROUTED_KEY);
  if (!routed) {
    vscode.window.showInformationMessage('Claude: the Claude Code extension is not routed through clauth-helper.');
    return;
  }
  const target = routed.target === 'user' ? vscode.ConfigurationTarget.Global : vscode.ConfigurationTarget.Workspace;
  try {
    await vscode.workspace.getConfiguration().update(routed.setting, routed.previous, target);
  } catch (err) {
    showError(`cannot put ${routed.setting} back`, err);
    return;
  }
  setWindowState(null);
  await context.globalState.update(ROUTED_KEY, undefined);
  vscode.window.showInformationMessage(`Claude: ${routed.setting} is back to what it was.`);
}

module.exports = { activate, deactivate };
