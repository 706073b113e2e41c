'use strict';
// The account of one VS Code window: one `clauth-helper serve` and the sessions it holds.
//
// Choosing a profile acquires a session held by the window's serve process; choosing another
// acquires the new one first, then lets the old one go. A session is let go only once no
// terminal opened under it is still open: a `claude` started in such a terminal keeps using the
// session's runtime, and releasing the last session would tear that runtime down under it.
// Closing the window (or a crash of the extension host) ends serve, and serve's sessions with it.

const { EventEmitter } = require('node:events');
const { Client, ClauthError } = require('../vendor/clauth-helper.js');
const { terminalEnvironment } = require('./envmap.js');

class WindowAccount extends EventEmitter {
  /**
   * `binary` and `env` are those of the serve process (`env` is also the base of the terminal
   * environment); `startClient` is Client.start unless a test replaces it.
   */
  constructor({ binary = 'clauth-helper', env = process.env, startClient = (o) => Client.start(o) } = {}) {
    super();
    this._binary = binary;
    this._env = env;
    this._startClient = startClient;
    this._client = null;
    this._starting = null;
    this._sessions = new Map(); // session id -> entry
    this._current = null; // entry
    this._queue = Promise.resolve();
    this._disposed = false;
  }

  /**
   * The window's session, or null: `{session, profile, home, configDir, linkMode, terminalEnv}`
   * where `terminalEnv` is `{set, blank}` (see envmap.js).
   */
  get current() {
    return this._current ? this._current.info : null;
  }

  /** Ids of every session this window holds (the current one and those kept for terminals). */
  heldSessions() {
    return [...this._sessions.keys()];
  }

  /** The binary serve runs from; a change takes effect with the next serve process. */
  setBinary(binary) {
    this._binary = binary;
  }

  async status(profile) {
    const client = await this._ensureClient();
    return client.status(profile);
  }

  /** Makes `profile` the window's account. Resolves to `current`. */
  choose(profile) {
    return this._serialised(async () => {
      if (this._current && this._current.info.profile === profile) return this.current;
      // A session kept for the terminals of an earlier choice of the same profile is taken back.
      const kept = [...this._sessions.values()].find((e) => e !== this._current && e.info.profile === profile);
      let entry = kept;
      if (!entry) {
        const client = await this._ensureClient();
        const r = await client.request('acquire', { profile });
        let terminalEnv;
        try {
          terminalEnv = terminalEnvironment(r, profile);
        } catch (err) {
          await client.release(r.session).catch(() => {});
          throw err;
        }
        entry = {
          info: {
            session: r.session,
            profile: r.profile,
            home: r.home === true,
            configDir: r.config_dir,
            linkMode: r.link_mode,
            terminalEnv,
          },
          terminals: new Set(),
        };
        this._sessions.set(r.session, entry);
      }
      const previous = this._current;
      this._current = entry;
      this.emit('change', this.current);
      if (previous) await this._letGo(previous);
      return this.current;
    });
  }

  /** The window has no account any more; its session is let go (see the top of this file). */
  clear() {
    return this._serialised(async () => {
      const previous = this._current;
      if (!previous) return;
      this._current = null;
      this.emit('change', null);
      await this._letGo(previous);
    });
  }

  /** A terminal opened: it runs under the window's current session, if any. */
  terminalOpened(terminal) {
    if (this._current) this._current.terminals.add(terminal);
  }

  /**
   * A terminal closed: a session kept only for it is released. Resolves when that is done;
   * a failure is emitted as 'failure', never thrown.
   */
  terminalClosed(terminal) {
    const releases = [];
    for (const entry of this._sessions.values()) {
      if (entry.terminals.delete(terminal) && entry !== this._current && entry.terminals.size === 0) {
        releases.push(this._serialised(() => this._release(entry)).catch((err) => this.emit('failure', err)));
      }
    }
    return Promise.all(releases).then(() => undefined);
  }

  /** The pid of the window's serve process, or null while none runs. */
  get servePid() {
    return this._client && this._client._child ? this._client._child.pid : null;
  }

  /** Ends serve: it releases every session it holds. */
  async dispose() {
    this._disposed = true;
    const client = this._client;
    this._client = null;
    this._sessions.clear();
    this._current = null;
    if (client) await client.close();
  }

  async _letGo(entry) {
    if (entry.terminals.size === 0) await this._release(entry);
  }

  async _release(entry) {
    if (!this._sessions.has(entry.info.session)) return;
    this._sessions.delete(entry.info.session);
    this.emit('released', entry.info);
    if (!this._client) return;
    try {
      await this._client.release(entry.info.session);
    } catch (err) {
      // Released elsewhere already: what we wanted.
      if (!(err instanceof ClauthError && err.code === 'session_not_found')) throw err;
    }
  }

  _serialised(fn) {
    const run = this._queue.then(fn, fn);
    this._queue = run.catch(() => {});
    return run;
  }

  _ensureClient() {
    if (this._disposed) return Promise.reject(new ClauthError('helper_exited', 'the window is closing'));
    if (this._client) return Promise.resolve(this._client);
    if (!this._starting) {
      this._starting = this._startClient({ binary: this._binary, env: this._env })
        .then((client) => {
          this._client = client;
          client.on('event', (ev) => this._onEvent(ev));
          client.on('exit', (info) => this._onExit(client, info));
          return client;
        })
        .finally(() => {
          this._starting = null;
        });
    }
    return this._starting;
  }

  _onEvent(event) {
    const entry = this._sessions.get(event.session);
    const isCurrent = !!entry && entry === this._current;
    if (event.event === 'session_ended' && entry) {
      this._sessions.delete(event.session);
      if (isCurrent) {
        this._current = null;
        this.emit('change', null);
      }
    }
    this.emit('helper-event', event, { profile: entry ? entry.info.profile : null, current: isCurrent });
  }

  _onExit(client, info) {
    if (client !== this._client) return;
    this._client = null;
    const hadAccount = !!this._current;
    this._sessions.clear();
    this._current = null;
    if (this._disposed) return;
    if (hadAccount) this.emit('change', null);
    this.emit('stopped', info);
  }
}

module.exports = { WindowAccount };
