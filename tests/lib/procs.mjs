// Child processes for the end-to-end tests: each runs in its own process group so the
// harness can stop it and everything it started (wrangler starts workerd), by id.
import { spawn } from 'node:child_process';
import { openSync, closeSync, appendFileSync } from 'node:fs';
import net from 'node:net';

const running = new Set();

/** Starts `cmd args` with stdout+stderr appended to `logFile`. */
export function start(name, cmd, args, { env = {}, cwd, logFile, dropTollgateEnv = false } = {}) {
  const fd = openSync(logFile, 'a');
  const base = { ...process.env };
  // The revocation service rejects TOLLGATE_* variables it does not know (the harness's own).
  if (dropTollgateEnv) for (const k of Object.keys(base)) if (k.startsWith('TOLLGATE_')) delete base[k];
  const child = spawn(cmd, args, {
    cwd,
    env: { ...base, ...env },
    stdio: ['ignore', fd, fd],
    detached: true, // own process group: kill(-pid) stops its children too
  });
  closeSync(fd);
  // The calling script kills these groups if this process dies before cleaning up.
  if (process.env.TOLLGATE_E2E_PIDFILE) appendFileSync(process.env.TOLLGATE_E2E_PIDFILE, `${child.pid}\n`);
  const proc = { name, child, logFile, exited: false, code: null };
  child.on('exit', (code, signal) => {
    proc.exited = true;
    proc.code = code ?? signal;
  });
  running.add(proc);
  return proc;
}

/** Stops a process group: SIGTERM, then SIGKILL after `graceMs`; resolves once gone. */
export async function stop(proc, { signal = 'SIGTERM', graceMs = 5000 } = {}) {
  if (!proc) return;
  running.delete(proc);
  const group = -proc.child.pid;
  const kill = (sig) => {
    try {
      process.kill(group, sig);
    } catch {
      /* already gone */
    }
  };
  kill(signal);
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && groupAlive(group)) await delay(50);
  if (groupAlive(group)) kill('SIGKILL');
  const hard = Date.now() + 2000;
  while (Date.now() < hard && groupAlive(group)) await delay(50);
}

function groupAlive(group) {
  try {
    process.kill(group, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops everything still running (the harness's last step). */
export async function stopAll() {
  await Promise.all([...running].map((p) => stop(p)));
}

export function delay(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws). */
export async function waitFor(what, check, { timeoutMs = 10000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await delay(intervalMs);
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
