'use strict';
// The account of a profile (its e-mail address) and its usage, read from what Claude Code wrote.
//
// `status` does not report either, so they are read, never written, from the documents Claude
// Code keeps: the runtime's `.claude.json` while a session runs, the profile's `account.json` in
// the store otherwise, and `~/.claude.json` for the home profile. Only the e-mail address and
// the usage figures are taken; nothing else of those documents leaves this module.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// The largest document read; `.claude.json` with a long project list is well under this.
const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

function readJson(file) {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile() || stat.size > MAX_DOCUMENT_BYTES) return null;
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    return doc && typeof doc === 'object' && !Array.isArray(doc) ? doc : null;
  } catch {
    return null;
  }
}

/** Where the store and the claude home are, from the environment the helper runs with. */
function locations(env = process.env) {
  const home = env.HOME || env.USERPROFILE || os.homedir();
  return {
    store: env.CLAUTH_HOME || path.join(home, '.clauth'),
    claudeJson: path.join(home, '.claude.json'),
  };
}

/**
 * Usage of the account `accountUuid` from a document's `cachedUsageUtilization` (Claude Code
 * 2.1.332 and later): the busiest window, `{window, percent}`, or null. A cache of another
 * account is ignored, as Claude Code ignores it; with `strict`, so is one that names none.
 */
function usageFrom(doc, accountUuid, { strict = false } = {}) {
  const cache = doc && doc.cachedUsageUtilization;
  if (!cache || typeof cache !== 'object') return null;
  // A cache without an account is the document's own; `strict` asks for this account's only.
  if (cache.accountUuid ? cache.accountUuid !== accountUuid : strict) return null;
  const body = cache.utilization;
  if (!body || typeof body !== 'object') return null;
  let best = null;
  for (const window of ['five_hour', 'seven_day', 'seven_day_opus', 'seven_day_sonnet']) {
    const percent = body[window] && body[window].utilization;
    if (typeof percent === 'number' && Number.isFinite(percent) && (!best || percent > best.percent)) {
      best = { window, percent };
    }
  }
  return best;
}

/**
 * `{email, usage}` of `profile` (both may be null). `configDir` is its runtime while a session
 * runs; `home` tells it is the home profile, whose documents are the claude home's.
 */
function accountInfo({ profile, home = false, configDir = null }, env = process.env) {
  const where = locations(env);
  const homeDoc = readJson(where.claudeJson);
  let doc = null;
  if (home) doc = homeDoc;
  else if (configDir) doc = readJson(path.join(configDir, '.claude.json'));
  if (!home && (!doc || !doc.oauthAccount)) {
    doc = { ...(doc || {}), ...(readJson(path.join(where.store, 'profiles', profile, 'account.json')) || {}) };
  }
  const account = doc && doc.oauthAccount && typeof doc.oauthAccount === 'object' ? doc.oauthAccount : {};
  const email = typeof account.emailAddress === 'string' && account.emailAddress ? account.emailAddress : null;
  const uuid = typeof account.accountUuid === 'string' ? account.accountUuid : null;
  // The usage cache is a shared key: the runtime's copy is the freshest, the home's holds the
  // last one any session wrote back.
  const usage = usageFrom(doc, uuid) || (uuid ? usageFrom(homeDoc, uuid, { strict: true }) : null);
  return { email, usage };
}

module.exports = { accountInfo, usageFrom, locations };
