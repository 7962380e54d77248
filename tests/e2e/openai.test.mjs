// End-to-end: the real `enclave serve` on fixture models, driven by curl and the official openai
// npm client. Run by CTest (e2e_openai) with ENCLAVE_BIN and ENCLAVE_FIXTURES_DIR set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { API_KEY, curl, loadOpenAI, requireEnv, sseEvents, startServer } from './helpers.mjs';

let OpenAI;
let chatServer;   // qwen2-tiny: ChatML template, byte-level BPE
let textServer;   // stories260K: plain completions
let client;
let model;

before(async () => {
  OpenAI = await loadOpenAI();
  const fixtures = requireEnv('ENCLAVE_FIXTURES_DIR');
  chatServer = await startServer({ model: path.join(fixtures, 'models/qwen2-tiny-Q8_0.gguf') });
  textServer = await startServer({ model: path.join(fixtures, 'models/stories260K.gguf') });
  client = new OpenAI({ apiKey: API_KEY, baseURL: chatServer.base + '/v1', maxRetries: 0 });
  const models = await client.models.list();
  model = models.data[0].id;
});

after(async () => {
  if (textServer) await textServer.stop();
  if (chatServer && chatServer.child.exitCode === null) await chatServer.stop();
});

const auth = ['-H', `Authorization: Bearer ${API_KEY}`];
const json = ['-H', 'Content-Type: application/json'];
const hello = [{ role: 'user', content: 'Hello, who are you?' }];

test('models list names the served model', async () => {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].id, 'qwen2-tiny-Q8_0');
  assert.equal(models.data[0].object, 'model');
});

test('chat completion, not streamed, with exact usage', async () => {
  const r = await client.chat.completions.create({ model, messages: hello, max_tokens: 12, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 5);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('chat streamed equals not streamed (greedy), with usage chunk', async () => {
  const full = await client.chat.completions.create({ model, messages: hello, max_tokens: 16, temperature: 0 });
  const stream = await client.chat.completions.create({
    model, messages: hello, max_tokens: 16, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let first = true;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    if (first) assert.equal(chunk.choices[0].delta.role, 'assistant');
    first = false;
    text += chunk.choices[0].delta.content ?? '';
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(text, full.choices[0].message.content);
  assert.equal(finish, full.choices[0].finish_reason);
  assert.ok(usage);
  assert.equal(usage.completion_tokens, full.usage.completion_tokens);
  assert.equal(usage.prompt_tokens, full.usage.prompt_tokens);
});

test('same seed gives the same sampled output', async () => {
  const req = { model, messages: hello, max_tokens: 16, temperature: 1.0, seed: 1234 };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
});

test('stop strings end the output before the stop text', async () => {
  const base = await client.chat.completions.create({ model, messages: hello, max_tokens: 24, temperature: 0 });
  const text = base.choices[0].message.content;
  assert.ok(text.length >= 4, `greedy output too short for a stop test: ${JSON.stringify(text)}`);
  const stop = text.slice(2, 4);
  const expected = text.slice(0, text.indexOf(stop));
  const r = await client.chat.completions.create({ model, messages: hello, max_tokens: 24, temperature: 0, stop: [stop] });
  assert.equal(r.choices[0].message.content, expected);
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('completions on stories260K: string prompt and token ids', async () => {
  const c = new OpenAI({ apiKey: API_KEY, baseURL: textServer.base + '/v1', maxRetries: 0 });
  const r = await c.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 16, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.ok(r.choices[0].text.length > 0);
  assert.ok(r.usage.prompt_tokens >= 4);
  const t = await c.completions.create({ model: 'stories260K', prompt: [1, 403, 407], max_tokens: 4, temperature: 0 });
  assert.equal(t.usage.prompt_tokens, 3);
  const s = await c.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 16, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of s) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

// Checks one chat logprobs entry: shape, ranges, sorted alternatives, greedy sampled token among
// them with the same logprob, probability mass of the alternatives at most 1.
function checkChatEntry(e, topN, greedy) {
  assert.equal(typeof e.token, 'string');
  assert.ok(Array.isArray(e.bytes) && e.bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256));
  assert.ok(e.logprob <= 0, `logprob ${e.logprob}`);
  assert.equal(e.top_logprobs.length, topN);
  let mass = 0;
  for (let i = 0; i < e.top_logprobs.length; i++) {
    const a = e.top_logprobs[i];
    assert.ok(a.logprob <= 0);
    if (i > 0) assert.ok(a.logprob <= e.top_logprobs[i - 1].logprob, 'top_logprobs not sorted');
    assert.ok(Array.isArray(a.bytes));
    mass += Math.exp(a.logprob);
  }
  assert.ok(mass <= 1 + 1e-4, `top mass ${mass}`);
  if (greedy && topN > 0) {
    const same = e.top_logprobs.find((a) => Buffer.from(a.bytes).equals(Buffer.from(e.bytes)) &&
                                            a.logprob === e.logprob);
    assert.ok(same, `sampled ${JSON.stringify(e.token)} not in top_logprobs with its logprob`);
    assert.equal(e.logprob, e.top_logprobs[0].logprob, 'greedy token is not the most likely');
  }
}

// Text without U+FFFD: the tiny model emits invalid UTF-8, which the server's decoder and node's
// replace differently; the valid characters must match exactly.
const validPart = (text) => text.replaceAll('\uFFFD', '');

test('chat logprobs: not streamed and streamed agree, top 20 checked', async () => {
  const req = { model, messages: hello, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 20 };
  const full = await client.chat.completions.create(req);
  const content = full.choices[0].logprobs.content;
  // End-of-generation tokens are counted in usage but have no text and no entry.
  const n = full.usage.completion_tokens - (full.choices[0].finish_reason === 'stop' ? 1 : 0);
  assert.equal(content.length, n);
  for (const e of content) checkChatEntry(e, 20, true);
  const bytes = Buffer.concat(content.map((e) => Buffer.from(e.bytes)));
  assert.equal(validPart(bytes.toString('utf8')), validPart(full.choices[0].message.content));

  const stream = await client.chat.completions.create({ ...req, stream: true });
  const streamed = [];
  let text = '';
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    text += c.delta.content ?? '';
    if (c.logprobs) streamed.push(...c.logprobs.content);
    // Entries go out with (or before) their text.
    const sent = Buffer.concat(streamed.map((e) => Buffer.from(e.bytes)));
    assert.ok(sent.length >= Buffer.byteLength(validPart(text)), 'text arrived before its logprobs');
  }
  assert.equal(text, full.choices[0].message.content);
  assert.equal(streamed.length, content.length);
  for (let i = 0; i < streamed.length; i++) {
    assert.deepEqual(streamed[i].bytes, content[i].bytes);
    assert.ok(Math.abs(streamed[i].logprob - content[i].logprob) < 1e-5);
    checkChatEntry(streamed[i], 20, true);
  }

  const plain = await client.chat.completions.create({ model, messages: hello, max_tokens: 2, temperature: 0 });
  assert.equal(plain.choices[0].logprobs, null);
  const bare = await client.chat.completions.create({ model, messages: hello, max_tokens: 3, temperature: 0, logprobs: true });
  for (const e of bare.choices[0].logprobs.content) checkChatEntry(e, 0, true);
  await assert.rejects(client.chat.completions.create({ model, messages: hello, top_logprobs: 2 }),
                       (e) => e.status === 400 && e.param === 'top_logprobs');
  await assert.rejects(client.chat.completions.create({ model, messages: hello, logprobs: true, top_logprobs: 21 }),
                       (e) => e.status === 400 && e.param === 'top_logprobs');
});

test('completions logprobs on stories260K: legacy shape, streamed the same', async () => {
  const c = new OpenAI({ apiKey: API_KEY, baseURL: textServer.base + '/v1', maxRetries: 0 });
  const req = { model: 'stories260K', prompt: 'Once upon a time', max_tokens: 10, temperature: 0, logprobs: 5 };
  const r = await c.completions.create(req);
  const lp = r.choices[0].logprobs;
  const n = lp.tokens.length;
  assert.ok(n >= 1);
  assert.equal(lp.token_logprobs.length, n);
  assert.equal(lp.top_logprobs.length, n);
  assert.equal(lp.text_offset.length, n);
  assert.equal(lp.tokens.join(''), r.choices[0].text);
  let offset = 0;
  for (let i = 0; i < n; i++) {
    assert.equal(lp.text_offset[i], offset);
    offset += [...lp.tokens[i]].length;
    assert.ok(lp.token_logprobs[i] <= 0);
    const top = Object.entries(lp.top_logprobs[i]);
    // The 5 most likely, plus the sampled token when it is not among them (greedy: it is).
    assert.equal(top.length, 5);
    assert.equal(lp.top_logprobs[i][lp.tokens[i]], lp.token_logprobs[i]);
    assert.equal(Math.max(...top.map(([, v]) => v)), lp.token_logprobs[i]);
    assert.ok(top.reduce((s, [, v]) => s + Math.exp(v), 0) <= 1 + 1e-4);
  }
  const s = await c.completions.create({ ...req, stream: true });
  const tokens = [];
  const offsets = [];
  for await (const chunk of s) {
    const l = chunk.choices[0]?.logprobs;
    if (!l) continue;
    tokens.push(...l.tokens);
    offsets.push(...l.text_offset);
  }
  assert.deepEqual(tokens, lp.tokens);
  assert.deepEqual(offsets, lp.text_offset);
  const zero = await c.completions.create({ ...req, logprobs: 0, max_tokens: 3 });
  for (const top of zero.choices[0].logprobs.top_logprobs) assert.equal(Object.keys(top).length, 1);
  await assert.rejects(c.completions.create({ ...req, logprobs: 6 }),
                       (e) => e.status === 400 && e.param === 'logprobs');
});

test('embeddings are L2-normalized, one per input (base64 and float)', async () => {
  const r = await client.embeddings.create({ model, input: ['hello world', 'goodbye'] });
  assert.equal(r.data.length, 2);
  const v = r.data[0].embedding;
  assert.equal(v.length, 256);
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-3, `norm ${norm}`);
  const f = await client.embeddings.create({ model, input: 'hello world', encoding_format: 'float' });
  assert.ok(Math.abs(f.data[0].embedding[0] - v[0]) < 1e-5);
});

test('eight concurrent streams all complete', async () => {
  const runs = Array.from({ length: 8 }, (_, i) => (async () => {
    const s = await client.chat.completions.create({
      model, messages: [{ role: 'user', content: `Count to ${i + 3}` }], max_tokens: 12,
      temperature: 0.7, seed: i, stream: true,
    });
    let finish = null;
    let chunks = 0;
    for await (const chunk of s) {
      chunks++;
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
    }
    return { finish, chunks };
  })());
  const results = await Promise.all(runs);
  for (const r of results) {
    assert.ok(['stop', 'length'].includes(r.finish));
    assert.ok(r.chunks >= 2);
  }
});

test('errors through the openai client', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages: hello }),
                       (e) => e.status === 404 && e.code === 'model_not_found');
  await assert.rejects(client.chat.completions.create({ model, messages: hello, n: 2 }),
                       (e) => e.status === 400 && e.param === 'n');
  await assert.rejects(client.chat.completions.create({ model, messages: hello, response_format: { type: 'json_object' } }),
                       (e) => e.status === 400 && /not supported/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x'.repeat(4000) }] }),
                       (e) => e.status === 400 && /512/.test(e.message));
  const bad = new OpenAI({ apiKey: 'sk-enclave-wrong-key-000000000000', baseURL: chatServer.base + '/v1', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e.status === 401);
});

test('curl: keep-alive reuses the connection; SSE framing is exact', async () => {
  const ka = await curl(['-v', `${chatServer.base}/health`, `${chatServer.base}/v1/health`]);
  assert.match(ka.stderr, /Re-?using existing connection/i);
  assert.equal(ka.stdout, '{"status":"ok"}{"status":"ok"}');
  const body = JSON.stringify({ model, messages: hello, max_tokens: 8, stream: true, stream_options: { include_usage: true } });
  const r = await curl(['-N', '-i', ...auth, ...json, '-d', body, `${chatServer.base}/v1/chat/completions`]);
  const [head, payload] = r.stdout.split('\r\n\r\n');
  assert.match(head, /^HTTP\/1\.1 200/);
  assert.match(head, /content-type: text\/event-stream/i);
  const events = sseEvents(payload);
  assert.equal(events.at(-1), '[DONE]');
  const parsed = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(parsed[0].choices[0].delta.role, 'assistant');
  assert.deepEqual(parsed.at(-1).choices, []);
  assert.ok(parsed.at(-1).usage.completion_tokens >= 1);
  assert.ok(parsed.at(-2).choices[0].finish_reason);
  // Also without the /v1 prefix, as DeepSeek serves it.
  const noV1 = await curl(['-o', '/dev/null', '-w', '%{http_code}', ...auth, `${chatServer.base}/models`]);
  assert.equal(noV1.stdout, '200');
});

test('curl: HTTP errors are OpenAI error objects', async () => {
  const code = async (args) => {
    const r = await curl(['-w', '\n%{http_code}', ...args]);
    const i = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
  };
  const url = `${chatServer.base}/v1/chat/completions`;
  const noKey = await code([...json, '-d', '{}', url]);
  assert.equal(noKey.status, 401);
  assert.equal(JSON.parse(noKey.body).error.type, 'authentication_error');
  const malformed = await code([...auth, ...json, '-d', '{"model":', url]);
  assert.equal(malformed.status, 400);
  assert.equal(JSON.parse(malformed.body).error.type, 'invalid_request_error');
  const missing = await code([...auth, ...json, '-d', JSON.stringify({ model }), url]);
  assert.equal(missing.status, 400);
  assert.equal(JSON.parse(missing.body).error.param, 'messages');
  const dir = mkdtempSync(path.join(tmpdir(), 'enclave-e2e-body-'));
  const big = path.join(dir, 'big.json');
  writeFileSync(big, 'x'.repeat(5 * 1024 * 1024));
  const tooBig = await code([...auth, ...json, '-H', 'Expect:', '--data-binary', `@${big}`, url]);
  assert.equal(tooBig.status, 413);
  const utf8 = path.join(dir, 'utf8.json');
  writeFileSync(utf8, Buffer.concat([Buffer.from(`{"model":"${model}","messages":[{"role":"user","content":"`),
                                     Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')]));
  const badUtf8 = await code([...auth, ...json, '--data-binary', `@${utf8}`, url]);
  assert.equal(badUtf8.status, 400);
  assert.match(JSON.parse(badUtf8.body).error.message, /UTF-8/);
  const metrics = await code([...auth, `${chatServer.base}/metrics`]);
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /enclave_http_requests_total\{route="chat_completions",status="200"\} \d+/);
  assert.match(metrics.body, /enclave_time_to_first_token_seconds_count [1-9]/);
});

test('SIGTERM shuts down gracefully with exit code 0', async () => {
  const r = await chatServer.stop();
  assert.equal(r.code, 0, chatServer.log());
  assert.match(chatServer.log(), /stopped/);
});
