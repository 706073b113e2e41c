'use strict';
// Everything the extension shows as text: the status bar, the account pick, notifications.
// Pure functions of the helper's responses and events, so they are tested without VS Code.

const WINDOW_NAMES = {
  five_hour: '5-hour',
  seven_day: 'weekly',
  seven_day_opus: 'weekly Opus',
  seven_day_sonnet: 'weekly Sonnet',
  seven_day_oauth_apps: 'weekly apps',
};

/** `5-hour` for `five_hour`; an unknown window name is shown as it is, with spaces. */
function windowName(window) {
  if (typeof window !== 'string' || !window) return 'usage';
  return WINDOW_NAMES[window] || window.replace(/_/g, ' ');
}

const percentText = (percent) => `${Math.round(percent)} %`;

/** The profile name, marked when it is the home profile (the login plain `claude` uses). */
const profileLabel = (name, home) => (home ? `${name} (home)` : name);

/**
 * The status bar text. `current` is null (no account), or `{profile, home, email, usage}`;
 * `problem` is a short word for a helper that cannot be used.
 */
function statusText(current, { problem } = {}) {
  if (problem) return `$(warning) Claude: ${problem}`;
  if (!current) return '$(account) Claude: no account';
  let text = `$(account) Claude: ${profileLabel(current.profile, current.home)}`;
  if (current.email) text += ` · ${current.email}`;
  if (current.usage && typeof current.usage.percent === 'number') text += ` · ${percentText(current.usage.percent)}`;
  return text;
}

/** The status bar tooltip (plain text lines). */
function statusTooltip(current, { problem, detail } = {}) {
  if (problem) return `clauth-helper: ${detail || problem}\nClick to try again.`;
  if (!current) {
    return 'This window has no Claude account: terminals run with your default login.\nClick to choose one.';
  }
  const lines = [`Claude account of this window: ${profileLabel(current.profile, current.home)}`];
  if (current.email) lines.push(`Account: ${current.email}`);
  if (current.usage) lines.push(`Usage: ${percentText(current.usage.percent)} of the ${windowName(current.usage.window)} limit`);
  lines.push(
    current.home
      ? 'Config: ~/.claude (the home profile)'
      : `Config: ${current.configDir}${current.linkMode ? ` (${current.linkMode} mode)` : ''}`,
  );
  lines.push(`Session: ${current.session}`);
  lines.push('New terminals of this window run under this account. Click to change it.');
  return lines.join('\n');
}

/** "logged in (team)", "not logged in", ... for a profile of `status`. */
function loginState(profile, now = Date.now()) {
  const c = profile.credentials || {};
  if (!c.present) return profile.home ? 'no login in ~/.claude' : 'not logged in: /login in a session';
  const plan = c.subscription_type ? ` (${c.subscription_type})` : '';
  if (typeof c.expires_at === 'number' && c.expires_at < now) {
    return `logged in${plan}, access token expired: refreshed when used`;
  }
  return `logged in${plan}`;
}

function sessionsText(profile, heldHere) {
  const all = (profile.sessions || []).length;
  const here = (profile.sessions || []).filter((s) => heldHere.has(s.session)).length;
  if (!all) return '';
  const others = all - here;
  const parts = [];
  if (here) parts.push('this window');
  if (others) parts.push(`${others} other session${others === 1 ? '' : 's'}`);
  return `in use: ${parts.join(', ')}`;
}

/**
 * Quick pick items for a `status` response: one per profile, with its account, login state,
 * sessions and usage. `info(profile)` gives `{email, usage}`; `current` is the window's profile
 * name or null; `heldHere` the set of session ids this window holds.
 */
function pickItems(status, { info = () => ({}), current = null, heldHere = new Set(), now = Date.now() } = {}) {
  const items = [];
  for (const profile of status.profiles || []) {
    const { email, usage } = info(profile) || {};
    const label = `${profile.name === current ? '$(check) ' : ''}${profileLabel(profile.name, profile.home)}`;
    const detail = [loginState(profile, now)];
    const sessions = sessionsText(profile, heldHere);
    if (sessions) detail.push(sessions);
    if (usage) detail.push(`${percentText(usage.percent)} of the ${windowName(usage.window)} limit`);
    for (const warning of profile.warnings || []) detail.push(`⚠ ${warning.message}`);
    items.push({
      label,
      description: email || '',
      detail: detail.join(' · '),
      profile: profile.name,
    });
  }
  return items;
}

/**
 * A notification for a serve event, or null for one not worth one. `profile` names the
 * session's profile; `current` tells whether it is the window's session.
 * Returns `{level: 'info'|'warning', text, actions: [label...]}`.
 */
function eventNotice(event, { profile, current = true } = {}) {
  const who = profile || 'a session';
  switch (event && event.event) {
    case 'synced':
      if (event.credentials_rejected) {
        return { level: 'warning', text: `Claude (${who}): ${event.credentials_rejected}`, actions: [] };
      }
      if (Array.isArray(event.conflicts) && event.conflicts.length) {
        return {
          level: 'warning',
          text: `Claude (${who}): ${event.conflicts.length} file(s) changed on both sides; both versions were kept (${event.conflicts.slice(0, 3).join(', ')}).`,
          actions: [],
        };
      }
      if (event.credentials_saved) {
        return { level: 'info', text: `Claude (${who}): the refreshed login was saved to the profile.`, actions: [] };
      }
      return null;
    case 'session_ended':
      return current
        ? {
            level: 'warning',
            text: `Claude: the ${who} session of this window was ended by another program; new terminals run without an account.`,
            actions: ['Choose Account'],
          }
        : null;
    case 'tick_failed': {
      const error = event.error || {};
      return {
        level: 'warning',
        text: `Claude (${who}): saving what the session wrote failed (${error.code || 'error'}): ${error.message || ''}`.trim(),
        actions: [],
      };
    }
    case 'usage': {
      const percent = usagePercent(event);
      if (percent === null) return null;
      const window = windowName(event.window || event.limit || event.kind);
      return {
        level: 'warning',
        text: `${who} is at ${percentText(percent)} of its ${window} limit: switch?`,
        actions: ['Switch Account'],
      };
    }
    default:
      return null;
  }
}

/**
 * The percentage a `usage` event carries, whichever field name it uses; null without one. The
 * event is not specified yet: Claude Code's usage endpoint counts 0-100 and the rate-limit
 * headers 0-1, and the event is only sent past 90 %, so a value up to 1 is read as a fraction.
 */
function usagePercent(event) {
  for (const key of ['utilization', 'percent', 'percentage']) {
    const value = event && event[key];
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value <= 1 ? value * 100 : value;
  }
  return null;
}

/** `{window, percent}` of a `usage` event, for the status bar; null without a percentage. */
function usageOfEvent(event) {
  const percent = usagePercent(event);
  return percent === null ? null : { window: event.window || event.limit || event.kind || null, percent };
}

module.exports = {
  statusText,
  statusTooltip,
  pickItems,
  loginState,
  eventNotice,
  usageOfEvent,
  windowName,
};
