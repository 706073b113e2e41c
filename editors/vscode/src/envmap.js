'use strict';
// The environment of the window's terminals, from an acquire response.
//
// A terminal gets every variable of the response's `env` and loses every variable it lists in
// `env_remove`. VS Code's environment collection cannot remove a variable, so a removed one is
// set to the empty string instead: Claude Code treats an empty value of each of them as unset.

const { ClauthError } = require('../vendor/clauth-helper.js');

const isStringMap = (value) =>
  !!value &&
  typeof value === 'object' &&
  !Array.isArray(value) &&
  Object.values(value).every((v) => typeof v === 'string');

/**
 * `{set, blank}` for the acquire response `acquired` of `profile`: `set` is every variable to
 * give a value, `blank` every variable to empty. `CLAUTH_PROFILE` names the profile unless the
 * response's `env` carries it (then its value wins). Throws `helper_failed` when the response
 * lacks `env` or `env_remove`, as no protocol 1 helper does.
 */
function terminalEnvironment(acquired, profile) {
  const add = acquired && acquired.env;
  const remove = acquired && acquired.env_remove;
  if (!isStringMap(add) || !Array.isArray(remove) || !remove.every((k) => typeof k === 'string')) {
    throw new ClauthError(
      'helper_failed',
      'the acquire response lacks env_remove (a list of names) or env (an object of strings)',
    );
  }
  const set = { ...add };
  if (!Object.prototype.hasOwnProperty.call(set, 'CLAUTH_PROFILE')) set.CLAUTH_PROFILE = profile;
  // A variable both set and removed keeps its value: the helper never sends one, and the value
  // is what the profile asked for.
  const blank = [...new Set(remove)].filter((key) => !Object.prototype.hasOwnProperty.call(set, key));
  return { set, blank };
}

/** Replaces everything in a VS Code EnvironmentVariableCollection with `mapping`. */
function applyToCollection(collection, mapping, description) {
  collection.clear();
  if (!mapping) {
    collection.description = undefined;
    return;
  }
  for (const [key, value] of Object.entries(mapping.set)) collection.replace(key, value);
  for (const key of mapping.blank) collection.replace(key, '');
  collection.description = description;
}

/** What a terminal started with `base` as its environment sees under `mapping`. */
function resultingEnvironment(base, mapping) {
  const env = { ...base };
  for (const key of mapping.blank) env[key] = '';
  Object.assign(env, mapping.set);
  return env;
}

module.exports = { terminalEnvironment, applyToCollection, resultingEnvironment };
