// Type declarations of the clauth-helper Node client (protocol v1).

import { EventEmitter } from 'node:events';

export declare const PROTOCOL_VERSION: 1;

export type LinkMode = 'real' | 'fake';

/**
 * Wire codes of protocol v1, plus the client's own: `helper_not_found` (the binary could not be
 * started), `helper_failed` and `helper_exited` (the serve process died or the client is closed).
 */
export type ErrorCode =
  | 'invalid_request'
  | 'unknown_verb'
  | 'unsupported_protocol'
  | 'invalid_profile_name'
  | 'profile_not_found'
  | 'profile_exists'
  | 'profile_busy'
  | 'invalid_credentials'
  | 'claude_home_missing'
  | 'session_not_found'
  | 'link_mode_conflict'
  | 'lock_timeout'
  | 'unsafe_store'
  | 'login_in_use'
  | 'home_busy'
  | 'home_mismatch'
  | 'keychain_locked'
  | 'keychain_failed'
  | 'no_headroom'
  | 'io'
  | 'helper_not_found'
  | 'helper_failed'
  | 'helper_exited'
  | (string & {});

export declare class ClauthError extends Error {
  constructor(code: ErrorCode, message: string, retryable?: boolean, resetsAt?: string | null);
  readonly name: 'ClauthError';
  code: ErrorCode;
  retryable: boolean;
  /** `no_headroom`: the earliest reset it knows of (RFC 3339, UTC), else null. */
  resetsAt: string | null;
  static fromWire(error: unknown): ClauthError;
}

interface Envelope {
  protocol: 1;
  ok: true;
  id: number;
}

/** What one sync did. */
export interface SyncReport {
  credentials_saved: boolean;
  credentials_rejected?: string;
  adopted: string[];
  linked: string[];
  unlinked: string[];
  copied_to_home: number;
  copied_to_runtime: number;
  deleted_in_home: number;
  deleted_in_runtime: number;
  conflicts: string[];
  settings_saved: boolean;
  claude_json_saved: boolean;
  rejected_documents: string[];
}

export interface Ticked extends Envelope, SyncReport {
  session: string;
  lease_expires_at?: number;
}

export interface Released extends Envelope, SyncReport {
  session: string;
  runtime_removed: boolean;
  remaining_sessions: number;
}

export interface SessionInfo {
  session: string;
  created_at: number;
  owner_pid: number | null;
  lease_expires_at: number | null;
  held: boolean;
}

/** One usage window: percent used (0 to 100) and when it starts afresh (RFC 3339, UTC). */
export interface UsageWindow {
  utilization: number;
  resets_at: string | null;
}

/** An account's usage and limits (PROTOCOL.md, 4.5); other windows under their own names. */
export interface Usage {
  five_hour: UsageWindow | null;
  seven_day: UsageWindow | null;
  extra_usage: Record<string, unknown> | null;
  fetched_at: number;
  stale: boolean;
  [window: string]: UsageWindow | Record<string, unknown> | number | boolean | null;
}

/** Why a profile has no usage figures; the list may grow. */
export type UsageError =
  | 'no_login'
  | 'api_key'
  | 'gateway'
  | 'no_profile_scope'
  | 'token_expired'
  | 'unauthorized'
  | 'rate_limited'
  | 'unreachable'
  | 'bad_response'
  | 'busy'
  | 'io'
  | (string & {});

export interface ProfileStatus {
  name: string;
  sessions: SessionInfo[];
  runtime: { config_dir: string; link_mode: LinkMode; orphaned: boolean } | null;
  credentials: { present: boolean; expires_at: number | null; subscription_type: string | null };
  /** Only with `status(profile, {usage: true})`. */
  usage?: Usage | null;
  usage_error?: UsageError | null;
}

export interface Status extends Envelope {
  profiles: ProfileStatus[];
}

export interface Capabilities extends Envelope {
  protocol_versions: number[];
  verbs: string[];
  features: string[];
  version: string;
}

/** An acquired session, ready to hand to a child process. */
export interface Session {
  session: string;
  profile: string;
  /** The runtime directory: CLAUDE_CONFIG_DIR. */
  configDir: string;
  linkMode: LinkMode;
  /**
   * The environment for Claude Code: the client's `env` without every variable the acquire
   * response lists in `env_remove`, plus every variable of its `env` (CLAUDE_CONFIG_DIR).
   */
  env: Record<string, string>;
  /** Only for an acquire by `pick`: what was known of the chosen profile. */
  picked: { headroom: number | null; usage: Usage | null; usage_error: UsageError | null } | null;
}

/** Let the helper choose the profile with the most headroom (PROTOCOL.md, 4.2). */
export interface Pick {
  among?: string[];
  min_headroom?: number;
}

export interface AcquireOptions {
  linkMode?: 'auto' | LinkMode;
  leaseMs?: number;
  /** With a null profile: the helper chooses. */
  pick?: Pick;
}

export interface StartOptions {
  /** The clauth-helper binary; default `clauth-helper` on PATH. */
  binary?: string;
  /** The helper's environment and the base of every Session's env; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Retries of a retryable failure (lock_timeout), with backoff; default 3. */
  retries?: number;
}

export interface HelperEvent {
  protocol: 1;
  event: string;
  session: string;
}
export interface SyncedEvent extends HelperEvent, SyncReport {
  event: 'synced';
}
export interface SessionEndedEvent extends HelperEvent {
  event: 'session_ended';
}
export interface TickFailedEvent extends HelperEvent {
  event: 'tick_failed';
  error: { code: ErrorCode; message: string; retryable: boolean };
}
/** The session's account passed 90 % of a usage window. */
export interface UsageEvent extends HelperEvent {
  event: 'usage';
  profile: string;
  window: string;
  utilization: number;
  resets_at: string | null;
  usage: Usage;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export declare class Client extends EventEmitter {
  /** Starts `clauth-helper serve` and checks that it speaks protocol 1. */
  static start(options?: StartOptions): Promise<Client>;
  acquire(profile: string | null, options?: AcquireOptions): Promise<Session>;
  tick(session: string): Promise<Ticked>;
  release(session: string): Promise<Released>;
  status(profile?: string, options?: { usage?: boolean }): Promise<Status>;
  capabilities(): Promise<Capabilities>;
  /** Any verb; resolves to the response, rejects with a ClauthError. */
  request(verb: string, body?: Record<string, unknown>): Promise<Envelope & Record<string, unknown>>;
  /** Ends the helper's input (it releases its sessions) and waits for it to exit. */
  close(options?: { timeoutMs?: number }): Promise<ExitInfo>;

  on(event: 'synced', listener: (ev: SyncedEvent) => void): this;
  on(event: 'session_ended', listener: (ev: SessionEndedEvent) => void): this;
  on(event: 'tick_failed', listener: (ev: TickFailedEvent) => void): this;
  on(event: 'usage', listener: (ev: UsageEvent) => void): this;
  /** Every helper event, including ones this client does not know yet. */
  on(event: 'event', listener: (ev: HelperEvent & Record<string, unknown>) => void): this;
  on(event: 'exit', listener: (info: ExitInfo) => void): this;
  on(event: string, listener: (...args: any[]) => void): this;
  once(event: 'synced', listener: (ev: SyncedEvent) => void): this;
  once(event: 'session_ended', listener: (ev: SessionEndedEvent) => void): this;
  once(event: 'tick_failed', listener: (ev: TickFailedEvent) => void): this;
  once(event: 'usage', listener: (ev: UsageEvent) => void): this;
  once(event: 'event', listener: (ev: HelperEvent & Record<string, unknown>) => void): this;
  once(event: 'exit', listener: (info: ExitInfo) => void): this;
  once(event: string, listener: (...args: any[]) => void): this;
}

/**
 * The environment for a program run in an acquired session, from a raw acquire response: `base`
 * (default process.env) without every variable in `env_remove`, plus every variable of `env`.
 * Throws a ClauthError `helper_failed` when either field is missing or malformed.
 */
export declare function childEnv(
  acquired: { env: Record<string, string>; env_remove: string[] },
  base?: NodeJS.ProcessEnv,
): Record<string, string>;

/**
 * Starts a client, acquires a session, runs `fn`, then releases and closes, also when `fn`
 * throws. Resolves to what `fn` returns.
 */
export declare function withSession<T>(
  profile: string | null,
  fn: (session: Session, client: Client) => T | Promise<T>,
  options?: StartOptions & AcquireOptions,
): Promise<T>;
