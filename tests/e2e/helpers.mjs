// Starts the real `enclave serve` binary for the e2e tests and runs curl against it.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const API_KEY = 'sk-enclave-e2e-test-key-0123456789abcdef';

// The openai package must be installed (scripts/setup runs npm install): fail loudly, never skip.
export async function loadOpenAI() {
  if (!existsSync(path.join(here, 'node_modules', 'openai'))) {
    throw new Error('tests/e2e/node_modules is missing: run `npm install` in tests/e2e ' +
                    '(scripts/setup does this)');
  }
  return (await import('openai')).default;
}

export function requireEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (CTest sets it; see tests/e2e/CMakeLists.txt)`);
  return v;
}

// Spawns `enclave serve` on a free port and waits for /ready.
export async function startServer({ model, extraArgs = [], env = {} }) {
  const bin = requireEnv('ENCLAVE_BIN');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'enclave-e2e-'));
  const args = ['serve', '--model', model, '--port', '0', '--data-dir', dataDir, '--ctx', '512',
                '--parallel', '8', '--threads', '2', ...extraArgs];
  const child = spawn(bin, args, {
    env: { ...process.env, ENCLAVE_API_KEY: API_KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start in 30 s:\n' + log)), 30000);
    child.stderr.on('data', (d) => {
      log += d.toString();
      const m = log.match(/listening on https?:\/\/[^\s:]+:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${log}`));
    });
  });
  child.stdout.resume();
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(base + '/ready');
      if (r.status === 200) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    base,
    port,
    child,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      const r = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      return r;
    },
  };
}

// Runs curl; resolves {stdout, stderr} (never rejects on HTTP errors).
export function curl(args) {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', ...args], { maxBuffer: 64 << 20, encoding: 'latin1' },
             (err, stdout, stderr) => {
               if (err && err.code === 'ENOENT') return reject(new Error('curl not installed'));
               resolve({ stdout, stderr });
             });
  });
}

// Parses an SSE body, asserting OpenAI's exact framing; returns the data payloads.
export function sseEvents(body) {
  const events = [];
  let pos = 0;
  while (pos < body.length) {
    if (!body.startsWith('data: ', pos)) throw new Error(`bad SSE framing at ${pos}: ${body.slice(pos, pos + 60)}`);
    const end = body.indexOf('\n\n', pos);
    if (end < 0) throw new Error('unterminated SSE event');
    events.push(body.slice(pos + 6, end));
    pos = end + 2;
  }
  return events;
}
