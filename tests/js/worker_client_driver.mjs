// Drives clients/worker/credentials.mjs for tests/tests/e2e/worker_client.rs: one command per
// stdin line, one JSON answer per stdout line. Commands: `get`, `advance <ms>` (the client's
// clock), `retarget <base url>` (where requests go: a closed port is a network failure).
import { createInterface } from "node:readline";
import { createCredentialsClient } from "../../clients/worker/credentials.mjs";

const [backendUrl, workerToken] = process.argv.slice(2);
let clock = 1_000_000;
let base = backendUrl;
const client = createCredentialsClient({
  backendUrl,
  workerToken,
  maxAgeMs: 60_000,
  staleIfErrorMs: 600_000,
  timeoutMs: 3_000,
  now: () => clock,
  fetch: (url, init) => fetch(url.replace(backendUrl, base), init),
});

const say = (answer) => process.stdout.write(`${JSON.stringify(answer)}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const [command, arg] = line.trim().split(/\s+/);
  if (command === "advance") {
    clock += Number(arg);
    say({ ok: true });
  } else if (command === "retarget") {
    base = arg;
    say({ ok: true });
  } else if (command === "get") {
    try {
      const { credentials, source } = await client.getWithSource();
      say({ ok: true, source, session: credentials.telegram_session });
    } catch (error) {
      say({ ok: false, error: error.name, status: error.status ?? null, code: error.code ?? null });
    }
  } else {
    say({ ok: false, error: `unknown command ${command}` });
  }
}
