import { ApiError } from './api-error.js';

/** How to reach the control plane. */
export interface ApiClientOptions {
  /** Base URL of the control plane, e.g. `http://127.0.0.1:7070`. */
  readonly baseUrl: string;
  /** Bearer token; `null` sends no `Authorization` header. */
  readonly token: string | null;
  /** Give up on a request after this long, milliseconds. @defaultValue 30000 */
  readonly timeoutMs?: number;
}

/** Query values; `undefined` ones are left out. */
export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

/** One request. A `body` is sent as JSON; without one the request has no body at all. */
export interface RequestOptions {
  readonly query?: Query;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

const DEFAULT_TIMEOUT_MS = 30_000;

interface ErrorEnvelope {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

function isErrorEnvelope(value: unknown): value is ErrorEnvelope {
  const error = (value as { error?: unknown } | null)?.error as { code?: unknown; message?: unknown } | undefined;
  return typeof error?.code === 'string' && typeof error.message === 'string';
}

/**
 * A small client of the control plane's REST API. Every non-2xx answer becomes an {@link ApiError}
 * carrying the answer's `code`, `message` and `details`; a request that gets no answer becomes an
 * `ApiError` with status 0 and code `UNREACHABLE` or `TIMEOUT`. The token is only ever put in the
 * `Authorization` header, never in a message.
 */
export class ApiClient {
  readonly #base: URL;
  readonly #token: string | null;
  readonly #timeoutMs: number;

  constructor(options: ApiClientOptions) {
    this.#base = new URL(options.baseUrl);
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, query ? { query } : {});
  }

  post<T>(path: string, body?: unknown, headers?: Readonly<Record<string, string>>): Promise<T> {
    return this.request<T>('POST', path, { ...(body === undefined ? {} : { body }), ...(headers ? { headers } : {}) });
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body });
  }

  /**
   * Sends one request and returns the parsed JSON answer.
   * @throws ApiError for an error answer, no answer, or an answer that is not JSON.
   */
  async request<T>(method: 'GET' | 'POST' | 'PATCH', path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(path.replace(/^\//, ''), this.#base.href.endsWith('/') ? this.#base : `${this.#base.href}/`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.#token !== null) headers['authorization'] = `Bearer ${this.#token}`;
    let payload: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(options.body);
    }

    let response: Response;
    let text: string;
    try {
      response = await fetch(url, { method, headers, body: payload, signal: AbortSignal.timeout(this.#timeoutMs) });
      text = await response.text();
    } catch (error) {
      throw this.#noAnswer(method, url, error);
    }

    let parsed: unknown = undefined;
    let parseFailed = false;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parseFailed = true;
      }
    }
    if (response.ok && !parseFailed) return parsed as T;
    if (!response.ok && isErrorEnvelope(parsed)) {
      const { code, message, details } = parsed.error;
      throw new ApiError(response.status, code as ApiError['code'], message, details ?? {});
    }
    throw new ApiError(response.status, 'BAD_RESPONSE', `${method} ${url.pathname} answered ${response.status} without a Tideway JSON body`, {
      status: response.status,
      contentType: response.headers.get('content-type'),
      body: text.slice(0, 200),
    });
  }

  #noAnswer(method: string, url: URL, error: unknown): ApiError {
    const name = (error as { name?: string } | null)?.name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new ApiError(0, 'TIMEOUT', `no answer from ${url.origin} to ${method} ${url.pathname} within ${this.#timeoutMs} ms`, { timeoutMs: this.#timeoutMs });
    }
    const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
    const reason = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
    return new ApiError(0, 'UNREACHABLE', `cannot reach ${url.origin}: ${reason}`, { url: url.origin, reason });
  }
}
