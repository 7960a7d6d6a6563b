import { DependencyUnavailableError, FlagConflictError, TidewayError, flagOwnerOf, type EnsureFlagsOptions, type FlagControl, type FlagState, type FlagSummary } from '@tideway/core';

/** Where `UnleashFlagControl` finds Unleash's admin API. */
export interface UnleashFlagControlOptions {
  /** Base URL of the Unleash server, e.g. `http://127.0.0.1:4242` (no `/api`). */
  readonly url: string;
  /** An admin API token (`*:*.<secret>`), sent as the `Authorization` header. */
  readonly adminToken: string;
  /** Unleash project that holds Tideway's flags. @defaultValue `'default'` */
  readonly project?: string;
  /** Environment whose strategy and on/off switch Tideway drives. @defaultValue `'development'` */
  readonly environment?: string;
  /** Per-request timeout, milliseconds (connect, answer and body). @defaultValue 3000 */
  readonly requestTimeoutMs?: number;
}

/** Start of the description of a flag whose `ensureFlags` has not finished; the next call finishes it. */
const PROVISIONING = 'Tideway: provisioning (ensureFlags finishes it on its next call)';
/** Description of a flag `ensureFlags` completed, when the caller gives none. */
const MANAGED = 'Managed by Tideway: gradual rollout per migration phase. Change it through Tideway.';
const STRATEGY = 'flexibleRollout';

interface StrategyBody {
  readonly id: string;
  readonly name: string;
  readonly parameters?: Record<string, string | undefined>;
}
interface EnvironmentBody {
  readonly name: string;
  readonly enabled: boolean;
  readonly strategies: readonly StrategyBody[];
}
interface FeatureBody {
  readonly name: string;
  readonly description?: string | null;
  readonly environments: readonly EnvironmentBody[];
}
interface ListedFeature {
  readonly name: string;
  readonly description?: string | null;
  readonly createdAt?: string;
  readonly environments?: readonly { readonly name: string; readonly enabled: boolean }[];
}
interface Answer {
  readonly status: number;
  readonly body: unknown;
}

/**
 * {@link FlagControl} over Unleash's admin API (`fetch`, one request at a time, each bounded by
 * `requestTimeoutMs`).
 *
 * Shape of a flag made by `ensureFlags`: type `release`, in `environment` one `flexibleRollout`
 * strategy `{ rollout, stickiness: 'default', groupId: <flag name> }` (so the same key gets the same
 * answer while the rollout only grows), environment switched on. Creation takes four requests in
 * an order that never exposes a flag to more keys than its rollout: create (described as
 * "provisioning", followed by the final description) → add the strategy at 0 % → switch the
 * environment on → give it its final description. When Unleash fails in between, the flag is left off
 * and the next `ensureFlags` completes it. A name held by an archived flag is deleted from the archive
 * and created afresh (never revived with its old rollout) when `owns` says it is the caller's.
 *
 * Not safe against two processes ensuring the same new flag at the same moment (both may add a
 * strategy); the engine serialises work per migration.
 *
 * Note: unleash-client 6 buckets keys into 100 integer buckets, so a one-decimal rollout such as
 * 12.5 % behaves like its integer part for clients.
 *
 * @example
 * ```ts
 * import { UnleashFlagControl } from '@tideway/flags';
 *
 * const flags = new UnleashFlagControl({ url: 'http://127.0.0.1:4242', adminToken: '*:*.secret' });
 * await flags.ensureFlags(['tideway.k3x9q2ma.orders-v2.read-new']);
 * await flags.setRollout('tideway.k3x9q2ma.orders-v2.read-new', 25);
 * ```
 */
export class UnleashFlagControl implements FlagControl {
  readonly #baseUrl: string;
  readonly #adminToken: string;
  readonly #project: string;
  readonly #environment: string;
  readonly #requestTimeoutMs: number;

  constructor(options: UnleashFlagControlOptions) {
    this.#baseUrl = options.url.replace(/\/+$/, '');
    this.#adminToken = options.adminToken;
    this.#project = options.project ?? 'default';
    this.#environment = options.environment ?? 'development';
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 3000;
  }

  /**
   * {@inheritDoc FlagControl.ensureFlags}
   * Flags are ensured one after the other; when one fails, those before it are complete and a retry
   * finishes the rest. Costs one request per existing flag.
   */
  async ensureFlags(names: readonly string[], options: EnsureFlagsOptions = {}): Promise<void> {
    for (const name of names) await this.#ensureFlag(name, options.descriptions?.[name] ?? MANAGED, options.owns ?? (() => true));
  }

  /**
   * {@inheritDoc FlagControl.setRollout}
   * @throws TidewayError `VALIDATION_FAILED` when `percent` is outside 0–100 or has more than one
   *   decimal; `INTERNAL` when the flag is unknown or has no gradual rollout (call `ensureFlags`).
   */
  async setRollout(flag: string, percent: number): Promise<void> {
    const tenths = Math.round(percent * 10);
    if (!Number.isFinite(percent) || percent < 0 || percent > 100 || Math.abs(tenths - percent * 10) > 1e-9) {
      throw new TidewayError('VALIDATION_FAILED', `rollout must be a percentage from 0 to 100 with at most one decimal, got ${percent}`, { field: 'rollout', value: percent });
    }
    const strategy = this.#rolloutStrategy(flag, await this.#getFeature(flag));
    const answer = await this.#request('PATCH', `${this.#environmentPath(flag)}/strategies/${encodeURIComponent(strategy.id)}`, [
      { op: strategy.parameters?.rollout === undefined ? 'add' : 'replace', path: '/parameters/rollout', value: String(tenths / 10) },
    ]);
    this.#expectOk(answer, 'PATCH', `strategy of ${flag}`);
  }

  /** {@inheritDoc FlagControl.getRollout} @throws TidewayError `INTERNAL` when the flag is unknown or has no gradual rollout. */
  async getRollout(flag: string): Promise<number> {
    return rolloutOf(this.#rolloutStrategy(flag, await this.#getFeature(flag)));
  }

  /** {@inheritDoc FlagControl.getState} @throws TidewayError `INTERNAL` when the flag is unknown. */
  async getState(flag: string): Promise<FlagState> {
    return this.#stateOf(await this.#getFeature(flag));
  }

  /** {@inheritDoc FlagControl.findState} One request. */
  async findState(flag: string): Promise<FlagState | null> {
    const feature = await this.#findFeature(flag);
    return feature ? this.#stateOf(feature) : null;
  }

  /**
   * {@inheritDoc FlagControl.listFlags}
   * `GET /api/admin/projects/<project>/features?namePrefix=<prefix>` (Unleash matches the prefix
   * case-insensitively; names are filtered here again, exactly).
   */
  async listFlags(prefix: string): Promise<FlagSummary[]> {
    const path = `/api/admin/projects/${encodeURIComponent(this.#project)}/features?namePrefix=${encodeURIComponent(prefix)}`;
    const answer = await this.#request('GET', path);
    this.#expectOk(answer, 'list', `${prefix}*`);
    const features = (answer.body as { features?: unknown } | null)?.features;
    if (!Array.isArray(features)) throw new TidewayError('INTERNAL', `unleash answered an unexpected shape listing flags ${prefix}*`, { dependency: 'unleash', prefix });
    return (features as ListedFeature[])
      .filter((f) => typeof f.name === 'string' && f.name.startsWith(prefix))
      .map((f) => ({
        name: f.name,
        description: f.description ?? '',
        enabled: f.environments?.find((e) => e.name === this.#environment)?.enabled === true,
        createdAt: new Date(f.createdAt ?? 0),
      }));
  }

  /**
   * {@inheritDoc FlagControl.archivedDescription}
   * `POST /api/admin/features/validate` says whether the name is free (200), held by an archived flag
   * (409 "archived") or by an active one (409: `null` here, see `findState`); only in the archived
   * case is the description read, with `GET /api/admin/search/features` (Unleash allows 15 searches a
   * minute by default; a 429 is a DependencyUnavailableError to retry).
   */
  async archivedDescription(name: string): Promise<string | null> {
    const answer = await this.#request('POST', '/api/admin/features/validate', { name });
    if (answer.status === 200) return null;
    if (answer.status !== 409) this.#expectOk(answer, 'validate the name of', name);
    if (!/archived/i.test(messageOf(answer.body))) return null;
    return this.#archivedDescription(name);
  }

  #stateOf(feature: FeatureBody): FlagState {
    const environment = this.#environmentOf(feature);
    const strategy = environment.strategies.find((s) => s.name === STRATEGY);
    return { name: feature.name, enabled: environment.enabled, rollout: strategy ? rolloutOf(strategy) : null, description: feature.description ?? '' };
  }

  /**
   * {@inheritDoc FlagControl.enable}
   * Refuses a flag without a gradual rollout: Unleash would give it a default 100 % strategy.
   * @throws TidewayError `INTERNAL` when the flag is unknown or has no gradual rollout.
   */
  async enable(flag: string): Promise<void> {
    this.#rolloutStrategy(flag, await this.#getFeature(flag));
    await this.#switch(flag, 'on');
  }

  /** {@inheritDoc FlagControl.disable} @throws TidewayError `INTERNAL` when the flag is unknown. */
  async disable(flag: string): Promise<void> {
    await this.#switch(flag, 'off');
  }

  /** {@inheritDoc FlagControl.archive} */
  async archive(flag: string): Promise<void> {
    const answer = await this.#request('DELETE', this.#featurePath(flag));
    if (answer.status === 404) return;
    this.#expectOk(answer, 'archive', flag);
  }

  async #ensureFlag(name: string, description: string, owns: (description: string) => boolean | Promise<boolean>): Promise<void> {
    const feature = (await this.#findFeature(name)) ?? (await this.#createFeature(name, `${PROVISIONING}. ${description}`, owns));
    const environment = this.#environmentOf(feature);
    if (!environment.strategies.some((s) => s.name === STRATEGY)) {
      const answer = await this.#request('POST', `${this.#environmentPath(name)}/strategies`, {
        name: STRATEGY,
        parameters: { rollout: '0', stickiness: 'default', groupId: name },
        constraints: [],
      });
      this.#expectOk(answer, 'add a strategy to', name);
    }
    if (feature.description?.startsWith(PROVISIONING) !== true) return;
    if (!environment.enabled) await this.#switch(name, 'on');
    const answer = await this.#request('PATCH', this.#featurePath(name), [{ op: 'replace', path: '/description', value: description }]);
    this.#expectOk(answer, 'mark as managed', name);
  }

  async #createFeature(name: string, description: string, owns: (description: string) => boolean | Promise<boolean>): Promise<FeatureBody> {
    const create = () => this.#request('POST', `/api/admin/projects/${encodeURIComponent(this.#project)}/features`, { name, type: 'release', description, impressionData: false });
    let answer = await create();
    if (answer.status === 409 && /archived/i.test(messageOf(answer.body))) {
      const archived = await this.#archivedDescription(name);
      if (archived !== null && !(await owns(archived))) throw new FlagConflictError(name, flagOwnerOf(archived), true);
      const removed = await this.#request('DELETE', `/api/admin/archive/${encodeURIComponent(name)}`);
      if (removed.status !== 404) this.#expectOk(removed, 'delete the archived', name);
      answer = await create();
    }
    if (answer.status === 409) {
      // Created by someone else between our read and our write: carry on with it if it is ours.
      const existing = await this.#findFeature(name);
      if (existing && !(await owns(existing.description ?? ''))) throw new FlagConflictError(name, flagOwnerOf(existing.description), false);
      if (existing) return existing;
    }
    this.#expectOk(answer, 'create', name);
    return { name, description, environments: [{ name: this.#environment, enabled: false, strategies: [] }] };
  }

  /** The description of the archived flag of this name (`''` when it has none), or `null` when the archive has no such flag (one search request). */
  async #archivedDescription(name: string): Promise<string | null> {
    const path = `/api/admin/search/features?query=${encodeURIComponent(name)}&archived=IS:true&project=IS:${encodeURIComponent(this.#project)}&limit=100`;
    const answer = await this.#request('GET', path);
    this.#expectOk(answer, 'look up the archived', name);
    const features = (answer.body as { features?: ListedFeature[] } | null)?.features ?? [];
    const found = features.find((f) => f.name === name);
    return found ? (found.description ?? '') : null;
  }

  async #findFeature(flag: string): Promise<FeatureBody | null> {
    const answer = await this.#request('GET', this.#featurePath(flag));
    if (answer.status === 404) return null;
    this.#expectOk(answer, 'read', flag);
    if (!isFeatureBody(answer.body)) throw new TidewayError('INTERNAL', `unleash answered an unexpected shape for flag ${flag}`, { dependency: 'unleash', flag });
    return answer.body;
  }

  async #getFeature(flag: string): Promise<FeatureBody> {
    const feature = await this.#findFeature(flag);
    if (!feature) throw new TidewayError('INTERNAL', `unleash has no flag named "${flag}" in project "${this.#project}"`, { dependency: 'unleash', flag, status: 404 });
    return feature;
  }

  #environmentOf(feature: FeatureBody): EnvironmentBody {
    const environment = feature.environments.find((e) => e.name === this.#environment);
    if (!environment) throw new TidewayError('INTERNAL', `unleash project "${this.#project}" has no environment "${this.#environment}"`, { dependency: 'unleash', flag: feature.name });
    return environment;
  }

  #rolloutStrategy(flag: string, feature: FeatureBody): StrategyBody {
    const strategy = this.#environmentOf(feature).strategies.find((s) => s.name === STRATEGY);
    if (!strategy) throw new TidewayError('INTERNAL', `flag ${flag} has no ${STRATEGY} strategy in ${this.#environment}; call ensureFlags first`, { dependency: 'unleash', flag });
    return strategy;
  }

  async #switch(flag: string, to: 'on' | 'off'): Promise<void> {
    this.#expectOk(await this.#request('POST', `${this.#environmentPath(flag)}/${to}`), `switch ${to}`, flag);
  }

  #featurePath(flag: string): string {
    return `/api/admin/projects/${encodeURIComponent(this.#project)}/features/${encodeURIComponent(flag)}`;
  }

  #environmentPath(flag: string): string {
    return `${this.#featurePath(flag)}/environments/${encodeURIComponent(this.#environment)}`;
  }

  /** One admin API call. Unreachable, timed out, 5xx or 429 → DependencyUnavailableError; other 4xx are returned. */
  async #request(method: string, path: string, body?: unknown): Promise<Answer> {
    const what = `${method} ${path}`;
    const signal = AbortSignal.timeout(this.#requestTimeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${this.#baseUrl}${path}`, {
        method,
        signal,
        headers: { authorization: this.#adminToken, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      text = await response.text();
    } catch (error) {
      const reason = signal.aborted ? `no answer within ${this.#requestTimeoutMs} ms` : describeFetchError(error);
      throw new DependencyUnavailableError('unleash', `${what}: ${reason}`, { cause: error });
    }
    let parsed: unknown = text;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      // Not JSON (a proxy's error page): keep the text for the message.
    }
    if (response.status >= 500 || response.status === 429) {
      // 429: Unleash's rate limit (searches: 15 a minute by default); like an outage, retry later.
      throw new DependencyUnavailableError('unleash', `${what} answered ${response.status}: ${messageOf(parsed)}`);
    }
    return { status: response.status, body: parsed };
  }

  #expectOk(answer: Answer, action: string, flag: string): void {
    if (answer.status >= 200 && answer.status < 300) return;
    throw new TidewayError('INTERNAL', `unleash refused to ${action} flag ${flag} (${answer.status}): ${messageOf(answer.body)}`, {
      dependency: 'unleash',
      flag,
      status: answer.status,
    });
  }
}

function rolloutOf(strategy: StrategyBody): number {
  const rollout = Number(strategy.parameters?.rollout ?? 0);
  return Number.isFinite(rollout) ? rollout : 0;
}

function isFeatureBody(body: unknown): body is FeatureBody {
  return typeof body === 'object' && body !== null && typeof (body as { name?: unknown }).name === 'string' && Array.isArray((body as { environments?: unknown }).environments);
}

/** The server's own words: `{ message }` or `{ details: [{ message }] }`, else the raw text. */
function messageOf(body: unknown): string {
  if (typeof body === 'object' && body !== null) {
    const { message, details } = body as { message?: unknown; details?: unknown };
    if (typeof message === 'string') return message;
    if (Array.isArray(details) && typeof (details[0] as { message?: unknown } | undefined)?.message === 'string') return (details[0] as { message: string }).message;
    return JSON.stringify(body).slice(0, 500);
  }
  return String(body ?? '(empty body)').slice(0, 500);
}

/** `fetch failed` hides the reason in `cause` (ECONNREFUSED, ENOTFOUND, …). */
function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  if (cause && typeof cause.code === 'string') return `${cause.code}${typeof cause.message === 'string' ? ` (${cause.message})` : ''}`;
  return error.message;
}
