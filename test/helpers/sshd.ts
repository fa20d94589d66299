// A real OpenSSH server on loopback for the ssh launcher's tests: Debian's /usr/sbin/sshd with its own host key,
// config and authorized_keys in a temp folder, public-key login only, for the user running the tests. Ready once it
// says it listens (its own log line, never a sleep); a known_hosts file names its host key.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { readLines } from './signals.js';

const SSHD = '/usr/sbin/sshd';
const INSTALL = 'apt-get install -y openssh-server openssh-client';

export interface Sshd {
  port: number;
  /** The user to log in as: the one running the tests. */
  user: string;
  /** The private key sshd accepts. */
  key: string;
  /** A known_hosts file naming sshd's host key for [127.0.0.1]:port. */
  knownHosts: string;
  /** The temp folder holding it all. */
  dir: string;
  stop(): Promise<void>;
}

/** Where `name` is on PATH, or null. */
function onPath(name: string): string | null {
  for (const d of (process.env.PATH ?? '').split(path.delimiter))
    if (d && existsSync(path.join(d, name))) return path.join(d, name);
  return null;
}

function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(file, args, (e, _out, err) =>
      e ? reject(new Error(`${file} ${args.join(' ')} failed: ${err || e.message}`)) : resolve(),
    ),
  );
}

/** An ed25519 key pair without a passphrase: `file` and `file.pub`. */
export async function keygen(file: string, comment = 'gpen-lab-test'): Promise<void> {
  const bin = onPath('ssh-keygen');
  if (!bin) throw new Error(`ssh-keygen is missing: ${INSTALL}`);
  await run(bin, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
}

/** `TYPE BASE64` of a public key file, its comment left off. */
export const publicKeyOf = (pubFile: string): string =>
  readFileSync(pubFile, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');

/** A port nothing listens on now: one the kernel hands out for port 0, closed again. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startSshd(): Promise<Sshd> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing (Debian's openssh-server): ${INSTALL}`);
  if (!onPath('ssh-keygen') || !onPath('ssh') || !onPath('scp'))
    throw new Error(`ssh, scp or ssh-keygen is missing (Debian's openssh-client): ${INSTALL}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-sshd-'));
  const hostKey = path.join(dir, 'host_ed25519');
  const key = path.join(dir, 'user_ed25519');
  await keygen(hostKey, 'gpen-lab-test-host');
  await keygen(key, 'gpen-lab-test-user');
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(`${key}.pub`));
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      'ListenAddress 127.0.0.1',
      `Port ${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      // scp in OpenSSH 9 speaks sftp
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  // the privilege separation folder sshd checks for at start
  mkdirSync('/run/sshd', { recursive: true });
  const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', () => resolve());
  });
  const log = readLines(child.stderr);
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`${SSHD} could not start: ${e.message}`)));
      log.waitFor(/Server listening on 127\.0\.0\.1 port/).then(
        () => resolve(),
        () =>
          void exited.then(() =>
            reject(new Error(`${SSHD} exited (${child.exitCode ?? child.signalCode}) before listening:\n${log.text}`)),
          ),
      );
    });
  } catch (e) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const knownHosts = path.join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${publicKeyOf(`${hostKey}.pub`)}\n`);
  return {
    port,
    user: os.userInfo().username,
    key,
    knownHosts,
    dir,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
