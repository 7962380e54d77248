// Load generator: N concurrent streaming chat completions against `enclave serve`; reports
// aggregate generated tokens/s over the wall time (prefill included), the aggregate decode rate
// (llama-server's measure: each stream's tokens after its first one over the time since its
// first one, median over streams, times the number of clients) and time-to-first-token p50/p99.
// Plain fetch + SSE parsing (no dependencies). Usage:
//   node bench/server/load.mjs --base http://127.0.0.1:8080 --key KEY [--clients 4]
//        [--requests 3] [--max-tokens 64] [--prompt-words 0] [--model default]
// --prompt-words N pads the user message with N words (about N prompt tokens more).
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const base = args.base ?? 'http://127.0.0.1:8080';
const key = args.key ?? process.env.ENCLAVE_API_KEY;
const clients = Number(args.clients ?? 4);
const perClient = Number(args.requests ?? 3);
const maxTokens = Number(args['max-tokens'] ?? 64);
const model = args.model ?? 'default';
const promptWords = Number(args['prompt-words'] ?? 0);
const words = ['river', 'stone', 'lamp', 'garden', 'window', 'engine', 'cloud', 'harbor'];
const padding = Array.from({ length: promptWords }, (_, k) => words[k % words.length]).join(' ');

async function one(i) {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: JSON.stringify({
      model, stream: true, max_tokens: maxTokens, temperature: 0.8, seed: i,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: `Write a short story about robot number ${i}. ${padding}` }],
    }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = '';
  let ttft = null;
  let first = null;
  let tokens = 0;
  let promptTokens = 0;
  for await (const part of res.body) {
    buf += decoder.decode(part, { stream: true });
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(6, end);
      buf = buf.slice(end + 2);
      if (ev === '[DONE]') continue;
      const chunk = JSON.parse(ev);
      const d = chunk.choices[0]?.delta;
      if (ttft === null && d && (d.content || d.reasoning_content)) {
        first = performance.now();
        ttft = first - t0;
      }
      if (chunk.usage) {
        tokens = chunk.usage.completion_tokens;
        promptTokens = chunk.usage.prompt_tokens;
      }
    }
  }
  const end = performance.now();
  const decode = first !== null && tokens > 1 && end > first ? (tokens - 1) / ((end - first) / 1000) : 0;
  return { ttft: ttft ?? end - t0, tokens, promptTokens, decode };
}

const start = performance.now();
const results = (await Promise.all(Array.from({ length: clients }, async (_, c) => {
  const out = [];
  for (let r = 0; r < perClient; r++) out.push(await one(c * 1000 + r));
  return out;
}))).flat();
const secs = (performance.now() - start) / 1000;
const total = results.reduce((s, r) => s + r.tokens, 0);
const ttfts = results.map((r) => r.ttft).sort((a, b) => a - b);
const pct = (p) => ttfts[Math.min(ttfts.length - 1, Math.floor(p * ttfts.length))];
const rates = results.map((r) => r.decode).sort((a, b) => a - b);
const medianRate = rates.length % 2 ? rates[(rates.length - 1) / 2]
  : (rates[rates.length / 2 - 1] + rates[rates.length / 2]) / 2;
console.log(JSON.stringify({
  clients, requests: results.length, prompt_tokens: results[0].promptTokens, generated_tokens: total, seconds: +secs.toFixed(2),
  aggregate_tokens_per_s: +(total / secs).toFixed(2),
  decode_tokens_per_s_per_stream: +medianRate.toFixed(2),
  aggregate_decode_tokens_per_s: +(medianRate * clients).toFixed(2),
  ttft_ms_p50: +pct(0.5).toFixed(1), ttft_ms_p99: +pct(0.99).toFixed(1),
}));
