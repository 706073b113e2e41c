'use strict';
// Node client of the clauth-helper protocol (v1), over one `clauth-helper serve` process.
//
// Sessions acquired through a Client are held by its serve process: they end when the client is
// closed, when this Node process exits, or when either process dies, so a crash never leaves a
// runtime behind. The serve process also ticks them every second and reports what it saved as
// events ("synced", "session_ended", "tick_failed"), and tells a session whose account passed
// 90 % of a usage window ("usage").

const { spawn } = require('node:child_process');
const { EventEmitter } = require('node:events');
const readline = require('node:readline');

const PROTOCOL_VERSION = 1;
const DEFAULT_BINARY = 'clauth-helper';

// Retries of a `retryable` failure (lock_timeout, keychain_locked). The helper has already waited
// for the state lock by then, so a few spaced attempts are enough to get past a burst of other
// clauth-helpers. `no_headroom` is retryable only after its `resetsAt`: it is rejected at once.
const DEFAULT_RETRIES = 3;
const FIRST_BACKOFF_MS = 200;
const NOT_RETRIED_HERE = new Set(['no_headroom']);

// Event names that mean something else to an EventEmitter; a helper event never takes them over.
const RESERVED_EVENTS = new Set(['error', 'exit', 'event', 'newListener', 'removeListener']);

const STDERR_KEPT = 4096;

/** A failure of the helper (`code` from the wire) or of talking to it. Switch on `code`. */
class ClauthError extends Error {
  constructor(code, message, retryable = false, resetsAt = null) {
    super(message);
    this.name = 'ClauthError';
    this.code = code;
    this.retryable = retryable;
    /** `no_headroom`: the earliest reset it knows of (RFC 3339), else null. */
    this.resetsAt = resetsAt;
  }

  /** The error for the `error` object of a failure response. */
  static fromWire(error) {
    const e = error && typeof error === 'object' ? error : {};
    return new ClauthError(
      String(e.code || 'unknown'),
      String(e.message || ''),
      e.retryable === true,
      typeof e.resets_at === 'string' ? e.resets_at : null,
    );
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The environment for a program run in an acquired session, as the acquire response says: a copy
 * of `base` without every variable the response lists in `env_remove` (inherited ones that would
 * override the profile's account), then with every variable of its `env` set
 * (`CLAUDE_CONFIG_DIR`). Throws `helper_failed` when the response lacks either field, as no
 * protocol 1 helper does.
 */
function childEnv(acquired, base = process.env) {
  const remove = acquired && acquired.env_remove;
  const add = acquired && acquired.env;
  if (
    !Array.isArray(remove) ||
    !remove.every((key) => typeof key === 'string') ||
    !add ||
    typeof add !== 'object' ||
    Array.isArray(add) ||
    !Object.values(add).every((value) => typeof value === 'string')
  ) {
    throw new ClauthError(
      'helper_failed',
      'the acquire response lacks env_remove (a list of names) or env (an object of strings)',
    );
  }
  const env = { ...base };
  for (const key of remove) delete env[key];
  Object.assign(env, add);
  return env;
}

class Client extends EventEmitter {
  /**
   * Starts `clauth-helper serve` and checks that it speaks protocol 1.
   * `env` is the helper's environment and the base of every session's `env` (default
   * process.env).
   */
  static async start({ binary = DEFAULT_BINARY, env = process.env, retries = DEFAULT_RETRIES } = {}) {
    const child = spawn(binary, ['serve'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => {
        const code = err.code === 'ENOENT' || err.code === 'EACCES' ? 'helper_not_found' : 'helper_failed';
        reject(new ClauthError(code, `cannot start ${binary}: ${err.message}`));
      });
    });
    const client = new Client(child, { env, retries });
    let caps;
    try {
      caps = await client.capabilities();
    } catch (err) {
      await client.close();
      throw err;
    }
    if (!Array.isArray(caps.protocol_versions) || !caps.protocol_versions.includes(PROTOCOL_VERSION)) {
      await client.close();
      throw new ClauthError(
        'unsupported_protocol',
        `the helper speaks protocols ${JSON.stringify(caps.protocol_versions)}; this client needs ${PROTOCOL_VERSION}`,
      );
    }
    return client;
  }

  /** Use Client.start(). */
  constructor(child, { env = process.env, retries = DEFAULT_RETRIES } = {}) {
    super();
    this._child = child;
    this._env = env;
    this._retries = retries;
    this._nextId = 0;
    this._pending = new Map();
    this._stderr = '';
    this._closing = false;
    this._exit = null;
    this._exited = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this._exit = { code, signal };
        this._failPending();
        resolve(this._exit);
        this.emit('exit', this._exit);
      });
    });
    // A write to a helper that just died fails with EPIPE, and a kill of an exited one with ESRCH;
    // 'close' reports the death itself, and an unhandled 'error' would crash the host program.
    child.on('error', () => {});
    child.stdin.on('error', () => {});
    child.stderr.on('data', (chunk) => {
      this._stderr = (this._stderr + chunk.toString('utf8')).slice(-STDERR_KEPT);
    });
    readline.createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => this._onLine(line));
    this._updateRef();
  }

  /**
   * Acquires a session held by this client's serve process. `profile` null with `pick`
   * (`{among, min_headroom}`, `{}` for every profile) lets the helper choose the profile with the
   * most headroom; the session's `profile` names the choice and `picked` what was known of it.
   */
  async acquire(profile, { linkMode, leaseMs, pick } = {}) {
    if ((profile == null) === (pick == null)) {
      throw new ClauthError('invalid_request', 'give either a profile or pick');
    }
    const r = await this.request('acquire', {
      profile: profile == null ? undefined : profile,
      pick: pick == null ? undefined : pick,
      link_mode: linkMode,
      lease_ms: leaseMs,
    });
    let env;
    try {
      env = childEnv(r, this._env);
    } catch (err) {
      // Without an environment to hand out the session is of no use; do not keep it.
      await this.release(r.session).catch(() => {});
      throw err;
    }
    return {
      session: r.session,
      profile: r.profile,
      configDir: r.config_dir,
      linkMode: r.link_mode,
      env,
      picked: r.pick === undefined ? null : r.pick,
    };
  }

  tick(session) {
    return this.request('tick', { session });
  }

  release(session) {
    return this.request('release', { session });
  }

  /** `usage: true` adds each profile's usage and limits (it may ask the usage endpoint). */
  status(profile, { usage } = {}) {
    return this.request('status', { profile, usage: usage ? true : undefined });
  }

  capabilities() {
    return this.request('capabilities', {});
  }

  /** Sends one request of `verb`; resolves to the response, rejects with a ClauthError. */
  async request(verb, body = {}) {
    let delay = FIRST_BACKOFF_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this._send(verb, body);
      } catch (err) {
        // Only `retryable` failures left the store untouched, so only they are safe to repeat.
        if (
          !(err instanceof ClauthError) ||
          !err.retryable ||
          NOT_RETRIED_HERE.has(err.code) ||
          attempt >= this._retries
        ) {
          throw err;
        }
      }
      await sleep(delay);
      delay *= 2;
    }
  }

  /**
   * Ends the helper's input and waits for it to exit; it releases every session it holds first.
   * After `timeoutMs` it is sent SIGTERM, which also releases them.
   */
  async close({ timeoutMs = 10000 } = {}) {
    if (this._exit) return this._exit;
    this._closing = true;
    this._updateRef();
    this._child.stdin.end();
    const timer = setTimeout(() => this._child.kill('SIGTERM'), timeoutMs);
    try {
      return await this._exited;
    } finally {
      clearTimeout(timer);
    }
  }

  _send(verb, body) {
    if (this._exit || this._closing) {
      return Promise.reject(new ClauthError('helper_exited', 'the client is closed'));
    }
    const id = ++this._nextId;
    // JSON.stringify drops undefined fields, so optional arguments need no special casing.
    const line = JSON.stringify({ ...body, protocol: PROTOCOL_VERSION, verb, id });
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      this._updateRef();
      this._child.stdin.write(line + '\n');
    });
  }

  _onLine(line) {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      return; // not ours to interpret; the helper only writes JSON lines
    }
    if (!msg || typeof msg !== 'object') return;
    if (msg.id === undefined && typeof msg.event === 'string') {
      this.emit('event', msg);
      if (!RESERVED_EVENTS.has(msg.event)) this.emit(msg.event, msg);
      return;
    }
    const pending = this._pending.get(msg.id);
    if (!pending) return;
    this._pending.delete(msg.id);
    this._updateRef();
    if (msg.protocol !== PROTOCOL_VERSION) {
      pending.reject(new ClauthError('unsupported_protocol', `the helper answered in protocol ${msg.protocol}`));
    } else if (msg.ok === true) {
      pending.resolve(msg);
    } else {
      pending.reject(ClauthError.fromWire(msg.error));
    }
  }

  _failPending() {
    const { code, signal } = this._exit;
    const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
    const tail = this._stderr.trim();
    for (const { reject } of this._pending.values()) {
      reject(new ClauthError('helper_exited', `clauth-helper serve ${how}${tail ? `: ${tail}` : ''}`));
    }
    this._pending.clear();
  }

  // An idle client does not keep Node alive: when the program ends, the helper sees its input
  // close and releases every session. While a request is in flight or the client is closing, it
  // does, or Node could exit with an await still pending.
  _updateRef() {
    const busy = this._pending.size > 0 || this._closing;
    for (const handle of [this._child, this._child.stdin, this._child.stdout, this._child.stderr]) {
      if (busy) handle.ref();
      else handle.unref();
    }
  }
}

/**
 * Starts a client, acquires a session of `profile` (or, with `profile` null and `pick`, of the
 * profile the helper picks), runs `fn(session, client)`, then releases
 * the session and closes the client, also when `fn` throws. Resolves to what `fn` returns.
 */
async function withSession(profile, fn, { binary, env, retries, linkMode, leaseMs, pick } = {}) {
  const client = await Client.start({ binary, env, retries });
  try {
    const session = await client.acquire(profile, { linkMode, leaseMs, pick });
    let result;
    try {
      result = await fn(session, client);
    } catch (err) {
      // fn's error is the one to report; closing below releases the session regardless.
      await client.release(session.session).catch(() => {});
      throw err;
    }
    try {
      await client.release(session.session);
    } catch (err) {
      // Released elsewhere: the session is already over, which is what we want.
      if (!(err instanceof ClauthError && err.code === 'session_not_found')) throw err;
    }
    return result;
  } finally {
    await client.close();
  }
}

module.exports = {
  Client,
  ClauthError,
  withSession,
  childEnv,
  PROTOCOL_VERSION,
};
