// Cells on another host over OpenSSH's client: the inputs (and a gpen-lab cell's job and model) copied there with scp
// into the launcher's work folder, the command run through ssh in batch mode (no password prompt), the outputs copied
// back into the cell's folder here. ssh's own failures (refused, no route, key refused, unknown host key) are findings.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Finding } from '../doctor/types.js';
import { GpenLabError } from '../errors.js';
import type { CellLauncher, LaunchContext, RunEnd } from './launcher-types.js';
import type { Launcher } from './types.js';

type Ssh = Extract<Launcher, { type: 'ssh' }>;

/** A word as POSIX sh reads it back. */
export const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);

/** The options ssh and scp share (scp spells the port -P). */
function options(l: Ssh, scp: boolean): string[] {
  return [
    scp ? '-P' : '-p',
    String(l.port ?? 22),
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=15',
    ...(l.key ? ['-i', l.key, '-o', 'IdentitiesOnly=yes'] : []),
    ...(l.knownHosts ? ['-o', `UserKnownHostsFile=${l.knownHosts}`, '-o', 'StrictHostKeyChecking=yes'] : []),
  ];
}

const destOf = (l: Ssh): string => (l.user ? `${l.user}@${l.host}` : l.host);

/** Runs a program here to its end: exit code and output (no timeout: ssh's ConnectTimeout bounds the connection). */
export function runHere(file: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '',
      err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', (e) => resolve({ code: null, out, err: `${err}${e.message}` }));
    c.on('close', (code) => resolve({ code, out, err }));
  });
}

export function sshLauncher(l: Ssh, ctx: LaunchContext): CellLauncher {
  const dest = destOf(l);
  const base = path.posix.join(l.workDir ?? '/tmp/gpen-lab-remote', ctx.cellId);
  const names = new Map<string, string>();
  const remoteInput = (local: string): string => {
    const abs = path.resolve(local);
    if (!names.has(abs)) names.set(abs, `${names.size}-${path.basename(abs)}`);
    return path.posix.join(base, 'in', names.get(abs)!);
  };
  const remoteOutput = (local: string): string =>
    path.posix.join(base, 'out', path.relative(ctx.cellDir, path.resolve(local)).split(path.sep).join('/'));
  const ssh = (command: string) => runHere('ssh', [...options(l, false), dest, '--', command]);
  const check = (what: string, r: { code: number | null; err: string }) => {
    if (r.code !== 0)
      // details.end: the run's end as the launcher's diagnosis reads it
      throw new GpenLabError(
        'E_NETWORK',
        `${what} on ${dest} failed (exit ${r.code}): ${r.err.trim().split('\n').slice(-2).join(' ')}`,
        `check that this machine reaches ${dest} over ssh (ssh -p ${l.port ?? 22} ${dest} true)`,
        { input: dest, end: { spawnError: r.code === null ? r.err : null, exitCode: r.code, stderr: r.err } },
      );
  };
  return {
    describe: `ssh ${dest}:${l.port ?? 22}`,
    host: l.host,
    inputPath: remoteInput,
    outputPath: remoteOutput,
    send: async (files) => {
      check(
        'mkdir',
        await ssh(`mkdir -p ${shellQuote(path.posix.join(base, 'in'))} ${shellQuote(path.posix.join(base, 'out'))}`),
      );
      for (const f of files)
        check(
          `scp ${f}`,
          await runHere('scp', [...options(l, true), '-q', path.resolve(f), `${dest}:${remoteInput(f)}`]),
        );
    },
    spawn: (argv, vars) => ({
      file: 'ssh',
      args: [
        ...options(l, false),
        dest,
        '--',
        [
          `mkdir -p ${shellQuote(path.posix.join(base, 'out'))} &&`,
          'exec env',
          ...Object.entries(vars).map(([k, v]) => shellQuote(`${k}=${v}`)),
          ...argv.map(shellQuote),
        ].join(' '),
      ],
      env: process.env,
    }),
    fetch: async (outputs) => {
      for (const o of outputs) {
        mkdirSync(path.dirname(o), { recursive: true });
        check(`scp back ${o}`, await runHere('scp', [...options(l, true), '-q', `${dest}:${remoteOutput(o)}`, o]));
      }
    },
    stop: async () => {
      // ssh's end closes the remote command's pipes; nothing of the run is left to stop by name
    },
    diagnose: (end) => sshFailure(l, end),
  };
}

/** ssh exits 255 for its own failures; the line it printed says which. */
export function sshFailure(l: Ssh, end: RunEnd): Finding | null {
  const dest = `${destOf(l)}:${l.port ?? 22}`;
  if (end.spawnError && /ENOENT/.test(end.spawnError))
    return {
      id: 'launcher-ssh-missing',
      verdict: 'fail',
      message: `ssh is not installed here: ${end.spawnError}`,
      fix: 'apt-get install openssh-client',
    };
  if (end.exitCode !== 255) return null;
  const e = end.stderr;
  const lines = e.split(/\r?\n/).map((x) => x.trim());
  // the line that says why: a changed host key's warning runs to a dozen lines before its own
  const line =
    [
      /Permission denied/i,
      /^Host key for .* has changed/i,
      /^No .* host key is known/i,
      /Host key verification failed/i,
      /^ssh: /,
      /refused|resolve/i,
    ]
      .map((re) => lines.find((x) => re.test(x)))
      .find((x) => x !== undefined) ??
    lines.find(Boolean) ??
    '';
  const port = l.port ?? 22;
  const knownHosts = l.knownHosts ?? '~/.ssh/known_hosts';
  const hostName = port === 22 ? l.host : `[${l.host}]:${port}`;
  const keyscan = `ssh-keyscan -p ${port} ${l.host} >> ${knownHosts}`;
  const fix = /Permission denied/i.test(e)
    ? `put the public key of ${l.key ?? 'your key'} in ~/.ssh/authorized_keys of ${l.user ?? 'the user'} on ${l.host} (ssh-copy-id -i ${l.key ?? '~/.ssh/id_ed25519'} -p ${port} ${destOf(l)})`
    : /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(e)
      ? `the host's key is not the one ${knownHosts} names: once you have checked the new one is right, ssh-keygen -f ${knownHosts} -R '${hostName}' && ${keyscan}`
      : /Host key verification failed|host key is known/i.test(e)
        ? `add the host's key to ${knownHosts} (${keyscan}) after checking it`
        : /Could not resolve|Name or service not known/i.test(e)
          ? `check the host name ${l.host}`
          : `check that sshd runs on ${dest} and that this machine reaches it (ssh -p ${port} ${destOf(l)} true)`;
  return { id: 'launcher-ssh-failed', verdict: 'fail', message: `ssh to ${dest} failed: ${line.slice(0, 300)}`, fix };
}
