// tglink credentials client for an upload worker (Cloudflare Workers, Vercel, Render, Node ≥ 18):
// fetches GET /api/worker/credentials with a worker token, keeps the last good credentials,
// revalidates them with If-None-Match after `maxAgeMs`, serves them stale for at most
// `staleIfErrorMs` when tglink cannot be reached, and forgets them as soon as tglink says the
// token or the session is no longer valid. No dependencies; see docs/api.md ("Worker client").
//
//   import { createCredentialsClient } from "./credentials.mjs";
//   const tglink = createCredentialsClient({ backendUrl: env.TGLINK_URL, workerToken: env.TGLINK_WORKER_TOKEN });
//   const { bot_token, telegram_session, api_id, api_hash } = await tglink.get();

/** tglink refused the credentials (problem+json `code`, HTTP `status`): the cache is dropped. */
export class CredentialsRefusedError extends Error {
  constructor(status, code, detail) {
    super(`tglink refused the credentials: ${status} ${code}${detail ? `: ${detail}` : ""}`);
    this.name = "CredentialsRefusedError";
    this.status = status;
    this.code = code;
  }
}

/** tglink could not be reached (or answered 5xx) and no fresh-enough credentials are cached. */
export class CredentialsUnavailableError extends Error {
  constructor(cause) {
    super(`tglink credentials unavailable: ${cause?.message ?? cause}`);
    this.name = "CredentialsUnavailableError";
    this.cause = cause;
  }
}

const PATH = "/api/worker/credentials";

export function createCredentialsClient({
  backendUrl,
  workerToken,
  maxAgeMs = 60_000,
  staleIfErrorMs = 10 * 60_000,
  timeoutMs = 5_000,
  fetch = globalThis.fetch,
  now = Date.now,
}) {
  if (!backendUrl || !workerToken) throw new TypeError("backendUrl and workerToken are required");
  const url = new URL(PATH, backendUrl).toString();
  // { credentials, etag, validatedAt }: the last answer tglink confirmed (200 or 304).
  let cache = null;
  let inflight = null;

  async function revalidate() {
    const headers = { authorization: `Bearer ${workerToken}`, accept: "application/json" };
    if (cache?.etag) headers["if-none-match"] = cache.etag;
    let response;
    try {
      response = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
    } catch (error) {
      return stale(error);
    }
    if (response.status === 304 && cache) {
      cache = { ...cache, validatedAt: now() };
      return { credentials: cache.credentials, source: "revalidated" };
    }
    if (response.status === 200) {
      const credentials = await response.json();
      cache = { credentials, etag: response.headers.get("etag"), validatedAt: now() };
      return { credentials, source: "fetched" };
    }
    if (response.status >= 500 || response.status === 429) {
      return stale(new Error(`HTTP ${response.status}`));
    }
    // 401 (token revoked or invalid), 400 (no live session), …: never serve the old secrets.
    cache = null;
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      // not problem+json: the status says enough
    }
    throw new CredentialsRefusedError(response.status, problem.code ?? "unknown", problem.detail);
  }

  function stale(cause) {
    if (cache && now() - cache.validatedAt < staleIfErrorMs) {
      return { credentials: cache.credentials, source: "stale" };
    }
    throw new CredentialsUnavailableError(cause);
  }

  return {
    /** The credentials, with where they came from: `cache`, `fetched`, `revalidated` or `stale`. */
    async getWithSource() {
      if (cache && now() - cache.validatedAt < maxAgeMs) {
        return { credentials: cache.credentials, source: "cache" };
      }
      // One request at a time per client: concurrent callers share it.
      inflight ??= revalidate().finally(() => {
        inflight = null;
      });
      return inflight;
    },
    /** The credentials (bot token, MTProto session, API id/hash, …). */
    async get() {
      return (await this.getWithSource()).credentials;
    },
    /** Forget the cached credentials (e.g. after Telegram rejected the session). */
    clear() {
      cache = null;
    },
  };
}
