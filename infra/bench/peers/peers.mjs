// Peer libraries on tglink's hot-path inputs (written by the hot-paths benchmark): Telegram
// initData validation with @tma.js/init-data-node, HS256 JWT verification with jose.
// Usage: node peers.mjs <inputs.json> <out.json>
import { readFileSync, writeFileSync } from 'node:fs';
import { hashToken, parse, validate } from '@tma.js/init-data-node';
import { jwtVerify } from 'jose';

const [inputsPath, outPath] = process.argv.slice(2);
const inputs = JSON.parse(readFileSync(inputsPath, 'utf8'));
// Installed versions, as pinned by package-lock.json.
const version = (name) =>
  JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;

// Median time per operation over `batches` batches of `perBatch` calls, after a warm-up.
async function measure(fn, { perBatch = 2000, batches = 30, warmup = 20000 } = {}) {
  for (let i = 0; i < warmup; i++) await fn();
  const perOp = [];
  for (let b = 0; b < batches; b++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) await fn();
    perOp.push(Number(process.hrtime.bigint() - start) / perBatch);
  }
  perOp.sort((a, b) => a - b);
  return { ns_per_op: perOp[Math.floor(perOp.length / 2)], min_ns_per_op: perOp[0], iterations: perBatch * batches };
}

// Sync functions are measured without `await` (an await would add a microtask per call).
function measureSync(fn, { perBatch = 2000, batches = 30, warmup = 20000 } = {}) {
  for (let i = 0; i < warmup; i++) fn();
  const perOp = [];
  for (let b = 0; b < batches; b++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) fn();
    perOp.push(Number(process.hrtime.bigint() - start) / perBatch);
  }
  perOp.sort((a, b) => a - b);
  return { ns_per_op: perOp[Math.floor(perOp.length / 2)], min_ns_per_op: perOp[0], iterations: perBatch * batches };
}

const results = [];
const tma = '@tma.js/init-data-node';
const hashed = hashToken(inputs.bot_token);
const opts = { expiresIn: inputs.max_age_secs };
// Sanity: the peer accepts the very string tglink validates (and refuses a tampered one).
validate(inputs.init_data, inputs.bot_token, opts);
let refused = false;
try { validate(inputs.init_data.replace('vdkfrost', 'vdkfrosx'), inputs.bot_token, opts); } catch { refused = true; }
if (!refused) throw new Error('@tma.js accepted tampered initData');

results.push({ hot_path: 'initdata_hmac', library: tma, version: version(tma), runtime: `node ${process.version}`,
  call: 'validate(initData, token)', ...measureSync(() => validate(inputs.init_data, inputs.bot_token, opts)) });
results.push({ hot_path: 'initdata_hmac', library: tma, version: version(tma), runtime: `node ${process.version}`,
  call: 'validate(initData, hashToken(token), {tokenHashed: true})',
  ...measureSync(() => validate(inputs.init_data, hashed, { ...opts, tokenHashed: true })) });
results.push({ hot_path: 'initdata_hmac', library: tma, version: version(tma), runtime: `node ${process.version}`,
  call: 'validate (token pre-hashed) + parse', parses: true,
  ...measureSync(() => { validate(inputs.init_data, hashed, { ...opts, tokenHashed: true }); return parse(inputs.init_data); }) });

const secret = new TextEncoder().encode(inputs.jwt_secret);
const jwtOptions = { issuer: inputs.issuer, audience: inputs.audience, algorithms: ['HS256'], requiredClaims: ['sub', 'exp'] };
await jwtVerify(inputs.jwt, secret, jwtOptions);
results.push({ hot_path: 'jwt_hs256', library: 'jose', version: version('jose'), runtime: `node ${process.version}`,
  call: 'await jwtVerify(jwt, secret, {issuer, audience, algorithms: [HS256]})',
  ...(await measure(() => jwtVerify(inputs.jwt, secret, jwtOptions))) });

writeFileSync(outPath, JSON.stringify(results, null, 2));
for (const r of results) console.error(`peers: ${r.library} ${r.call}: ${r.ns_per_op.toFixed(0)} ns/op`);
