#!/usr/bin/env node
// Makes sure a headless Chromium is on the machine for the report-rendering test (Debian's
// `chromium` package; installed with apt-get when missing and running as root). Prints its path.
// No dependencies. Usage: node infra/chromium.mjs   (or import { ensureChromium })
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CANDIDATES = ['chromium', 'chromium-browser', 'google-chrome'];

function find() {
  for (const name of CANDIDATES) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}

/** The path of a Chromium binary, installing Debian's package when missing. @throws Error when it cannot. */
export function ensureChromium() {
  const found = find();
  if (found) return found;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) throw new Error('chromium is missing; install it: apt-get install -y chromium');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  console.error('chromium: installing Debian package (one time)');
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'chromium']]) {
    const r = spawnSync('apt-get', args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed:\n${(r.stdout + r.stderr).slice(-2000)}`);
  }
  const installed = find();
  if (!installed) throw new Error('chromium was installed but is not on PATH');
  return installed;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(ensureChromium());
