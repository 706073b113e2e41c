'use strict';
// Making the official Claude Code extension of a window use the window's account.
//
// The official extension does not reliably pass `claudeCode.environmentVariables` on to the
// Claude Code it starts, but it does run a wrapper program named in its settings. The wrapper
// written here finds the window it was started from by walking up its parent processes to the
// extension host (every window has its own), reads the profile that window chose from a small
// state file named by the extension host's pid, and runs Claude Code through
// `clauth-helper run PROFILE`, so each Claude Code it starts holds a session of its own. Started
// from a window without an account, it runs Claude Code unchanged.

const fs = require('node:fs');
const path = require('node:path');

const OFFICIAL_EXTENSION_ID = 'anthropic.claude-code';

// The settings of the official extension that name a wrapper, best first. The first is called
// as `WRAPPER CLAUDE ARGS...`; the second, where an extension version has it, as
// `WRAPPER ARGS...`. The wrapper handles both.
const WRAPPER_SETTINGS = ['claudeCode.claudeProcessWrapper', 'claudeCode.executablePath'];

// How many parent processes the wrapper looks through before it gives up.
const MAX_ANCESTORS = 32;

/** Every configuration property an extension's package.json declares. */
function declaredSettings(packageJSON) {
  const contributes = (packageJSON && packageJSON.contributes) || {};
  const sections = Array.isArray(contributes.configuration)
    ? contributes.configuration
    : contributes.configuration
      ? [contributes.configuration]
      : [];
  const names = new Set();
  for (const section of sections) {
    for (const name of Object.keys((section && section.properties) || {})) names.add(name);
  }
  return names;
}

/** The wrapper setting the official extension declares, or null (it has none we know). */
function wrapperSetting(packageJSON) {
  const declared = declaredSettings(packageJSON);
  return WRAPPER_SETTINGS.find((name) => declared.has(name)) || null;
}

/** `s` quoted for a POSIX shell. */
function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/**
 * The wrapper script. `stateDir` holds one file per window (named by the extension host's pid);
 * `chain` is the wrapper the setting named before, run in turn (`CHAIN CLAUDE ARGS...`), or null.
 */
function wrapperScript({ stateDir, chain = null }) {
  return `#!/bin/sh
# Written by the clauth-helper VS Code extension ("Claude: Make the Claude Code Extension Use
# This Window's Account"). Runs Claude Code for the official Claude Code extension under the
# account the window chose, through \`clauth-helper run\`; unchanged in a window without one.
# Remove it with "Claude: Stop Routing the Claude Code Extension Through clauth-helper".
state_dir=${shellQuote(stateDir)}
chain=${shellQuote(chain || '')}

# Called as WRAPPER CLAUDE ARGS... (the program is an absolute path) or as WRAPPER ARGS....
case "$1" in
  /*) if [ -f "$1" ]; then program=$1; shift; else program=claude; fi ;;
  *) program=claude ;;
esac

parent_of() {
  if [ -r "/proc/$1/stat" ]; then
    # The command name in parentheses may hold spaces: the parent pid is the second field after it.
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    set -- \${stat##*) }
    echo "$2"
  else
    ps -o ppid= -p "$1" 2>/dev/null | tr -d ' '
  fi
}

profile=
helper=
pid=$PPID
steps=0
while [ -n "$pid" ] && [ "$pid" -gt 1 ] 2>/dev/null && [ "$steps" -lt ${MAX_ANCESTORS} ]; do
  if [ -f "$state_dir/$pid" ]; then
    . "$state_dir/$pid"
    break
  fi
  pid=$(parent_of "$pid")
  steps=$((steps + 1))
done

if [ -n "$chain" ]; then
  set -- "$chain" "$program" "$@"
else
  set -- "$program" "$@"
fi
if [ -n "$profile" ] && [ -n "$helper" ]; then
  exec "$helper" run "$profile" -- "$@"
fi
exec "$@"
`;
}

/**
 * The state file of a window: the profile it chose and the helper to run. The file is sourced by
 * the wrapper, so every value is quoted. `clauthHome` is the store when the window's helper runs
 * with CLAUTH_HOME set.
 */
function windowState({ profile, helper, clauthHome = null }) {
  let text = `profile=${shellQuote(profile)}\nhelper=${shellQuote(helper)}\n`;
  if (clauthHome) text += `CLAUTH_HOME=${shellQuote(clauthHome)}\nexport CLAUTH_HOME\n`;
  return text;
}

/** Writes `bytes` to `file` by a temp sibling and a rename, so a reader never sees half of it. */
function writeAtomic(file, bytes, mode) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, bytes, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

/** The wrapper and state-file paths under the extension's global storage directory. */
function wrapperPaths(storageDir) {
  return {
    wrapper: path.join(storageDir, 'claude-wrapper'),
    stateDir: path.join(storageDir, 'windows'),
  };
}

/** Writes the wrapper (0700) and creates the state directory (0700). Returns the paths. */
function installWrapper(storageDir, { chain = null } = {}) {
  const paths = wrapperPaths(storageDir);
  fs.mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(storageDir, 0o700);
  fs.chmodSync(paths.stateDir, 0o700);
  writeAtomic(paths.wrapper, wrapperScript({ stateDir: paths.stateDir, chain }), 0o700);
  return paths;
}

/** Records (or, with `state` null, removes) the window of extension host `pid`. */
function setWindowState(storageDir, pid, state) {
  const { stateDir } = wrapperPaths(storageDir);
  const file = path.join(stateDir, String(pid));
  if (!state) {
    fs.rmSync(file, { force: true });
    return;
  }
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeAtomic(file, windowState(state), 0o600);
}

/** Removes the state files of windows whose extension host is gone. */
function sweepWindowStates(storageDir, isAlive) {
  const { stateDir } = wrapperPaths(storageDir);
  let names;
  try {
    names = fs.readdirSync(stateDir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) fs.rmSync(path.join(stateDir, name), { force: true });
  }
}

/** Whether a process `pid` exists (signal 0). */
function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

module.exports = {
  OFFICIAL_EXTENSION_ID,
  WRAPPER_SETTINGS,
  wrapperSetting,
  wrapperScript,
  windowState,
  installWrapper,
  setWindowState,
  sweepWindowStates,
  processAlive,
  wrapperPaths,
  shellQuote,
};
