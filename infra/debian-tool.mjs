#!/usr/bin/env node
// Makes sure a tool a test needs is on the machine, from Debian's packages (installed with apt-get
// when missing and running as root), and prints its path. No dependencies.
// Usage: node infra/debian-tool.mjs chromium | prometheus | promtool   (or import { ensureDebianTool })
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The tools, by name: the binaries that may provide it and the Debian package that installs it. */
export const TOOLS = {
  chromium: { binaries: ['chromium', 'chromium-browser', 'google-chrome'], package: 'chromium' },
  prometheus: { binaries: ['prometheus'], package: 'prometheus' },
  promtool: { binaries: ['promtool'], package: 'prometheus' },
};

function find(binaries) {
  for (const name of binaries) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}

/**
 * The path of tool `name` (a key of TOOLS), installing its Debian package when missing.
 * @throws Error when the tool is unknown, missing and not installable (not root), or apt-get fails.
 */
export function ensureDebianTool(name) {
  const tool = TOOLS[name];
  if (!tool) throw new Error(`unknown tool "${name}" (known: ${Object.keys(TOOLS).join(', ')})`);
  const found = find(tool.binaries);
  if (found) return found;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) throw new Error(`${name} is missing; install it: apt-get install -y ${tool.package}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  console.error(`${name}: installing Debian package ${tool.package} (one time)`);
  // The package lists may be stale or absent on a fresh machine: update first.
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', tool.package]]) {
    const r = spawnSync('apt-get', args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed:\n${(r.stdout + r.stderr).slice(-2000)}`);
  }
  const installed = find(tool.binaries);
  if (!installed) throw new Error(`${tool.package} was installed but ${name} is not on PATH`);
  return installed;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    console.log(ensureDebianTool(process.argv[2] ?? ''));
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(1);
  }
}
