// Where a cell's processes start: here (local), in a container (docker or podman: the command line built from the
// cell, the inputs and the cell's folder mounted), or on another host over ssh (launch-ssh.ts). Each launcher says
// where a local file is as the command sees it, spawns through one program here, and names its own failures (no
// engine, no image, GPUs refused, host unreachable) as findings with the fix.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import type { Finding } from '../doctor/types.js';
import { sshLauncher } from './launch-ssh.js';
import type { CellLauncher, LaunchContext, RunEnd } from './launcher-types.js';
import type { Launcher } from './types.js';

export type { CellLauncher, LaunchContext, RunEnd } from './launcher-types.js';

/** Where a cell runs: here, over ssh, in a container, or on a worker serving a queue (src/queue, through the runner). */
export const LAUNCHER_TYPES = ['local', 'ssh', 'docker', 'queue'] as const;
export const ENGINES = ['docker', 'podman'] as const;

export function localLauncher(): CellLauncher {
  return {
    describe: 'local',
    host: os.hostname(),
    inputPath: (p) => p,
    outputPath: (p) => p,
    send: async () => undefined,
    spawn: (argv, vars) => ({ file: argv[0], args: argv.slice(1), env: { ...process.env, ...vars } }),
    fetch: async () => undefined,
    stop: async () => undefined,
    diagnose: (end) =>
      end.spawnError && /ENOENT/.test(end.spawnError)
        ? {
            id: 'command-not-found',
            verdict: 'fail',
            message: `the command could not start: ${end.spawnError}`,
            fix: "install the program, or give its full path as the command's argv[0]",
          }
        : null,
  };
}

const IN = '/gpen-lab/in';
const OUT = '/gpen-lab/out';

/**
 * A container per run: `ENGINE run --rm --name TAG [--gpus G] -v DIR:/gpen-lab/inN:ro... -v CELLDIR:/gpen-lab/out
 * [-v VOLUME]... [-e K=V]... [EXTRA]... IMAGE ARGV...`; podman takes the GPUs as a CDI device.
 */
export function dockerLauncher(l: Extract<Launcher, { type: 'docker' }>, ctx: LaunchContext): CellLauncher {
  const engine = l.engine ?? 'docker';
  const dirs = [...new Set(ctx.inputs.map((i) => path.dirname(path.resolve(i))))];
  const mountOf = (dir: string) => `${IN}${dirs.indexOf(dir)}`;
  const gpus = l.gpus ? (engine === 'podman' ? ['--device', `nvidia.com/gpu=${l.gpus}`] : ['--gpus', l.gpus]) : [];
  return {
    describe: `${engine} ${l.image}${l.gpus ? ` (${gpus.join(' ')})` : ''}${l.volumes?.length ? `, ${l.volumes.map((v) => `-v ${v}`).join(' ')}` : ''}`,
    host: os.hostname(),
    inputPath: (p) => {
      const abs = path.resolve(p);
      return path.posix.join(mountOf(path.dirname(abs)), path.basename(abs));
    },
    outputPath: (p) => path.posix.join(OUT, path.relative(ctx.cellDir, path.resolve(p)).split(path.sep).join('/')),
    send: async () => undefined,
    spawn: (argv, vars, tag) => ({
      file: engine,
      args: [
        'run',
        '--rm',
        '--name',
        tag,
        ...gpus,
        ...dirs.flatMap((d) => ['-v', `${d}:${mountOf(d)}:ro`]),
        '-v',
        `${path.resolve(ctx.cellDir)}:${OUT}`,
        ...(l.volumes ?? []).flatMap((v) => ['-v', v]),
        ...Object.entries({ ...(l.env ?? {}), ...vars }).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
        ...(l.extraArgs ?? []),
        l.image,
        ...argv,
      ],
      env: process.env,
    }),
    fetch: async () => undefined,
    stop: async (tag) => {
      spawnSync(engine, ['kill', tag], { stdio: 'ignore', timeout: 30_000 });
    },
    diagnose: (end) => engineFailure(engine, l, end),
  };
}

/** The engines' documented failures (docker 24-27, podman 4-5): engine missing or down, image missing, GPUs refused. */
export function engineFailure(engine: string, l: Extract<Launcher, { type: 'docker' }>, end: RunEnd): Finding | null {
  if (end.spawnError && /ENOENT/.test(end.spawnError))
    return {
      id: 'launcher-engine-missing',
      verdict: 'fail',
      message: `${engine} is not installed here: ${end.spawnError}`,
      fix:
        engine === 'podman'
          ? 'apt-get install podman, or set the launcher\'s engine to "docker"'
          : 'install Docker Engine (apt-get install docker.io), or set the launcher\'s engine to "podman"',
    };
  const e = end.stderr;
  if (/Cannot connect to the Docker daemon|Is the docker daemon running|cannot connect to Podman/i.test(e))
    return {
      id: 'launcher-engine-down',
      verdict: 'fail',
      message: `${engine} is installed but its daemon does not answer: ${firstLine(e, /daemon|connect/i)}`,
      fix: engine === 'podman' ? 'systemctl --user start podman.socket' : 'systemctl start docker (or dockerd &)',
    };
  if (
    /Unable to find image|pull access denied|manifest unknown|repository does not exist|image not known|requested access to the resource is denied|manifest for .* not found/i.test(
      e,
    )
  )
    return {
      id: 'launcher-image-missing',
      verdict: 'fail',
      message: `the image ${l.image} is not here and could not be pulled: ${firstLine(e, /denied|not found|unknown|Unable|not known/i)}`,
      fix: `${engine} pull ${l.image} (or ${engine} build -t ${l.image} .), or name an image that exists (${engine} images)`,
    };
  if (
    /could not select device driver .*capabilities: \[\[gpu\]\]|unresolvable CDI devices|nvidia-container-cli|unknown flag: --gpus/i.test(
      e,
    )
  )
    return {
      id: 'launcher-gpus-refused',
      verdict: 'fail',
      message: `${engine} refused the GPUs (${l.gpus ?? 'none asked'}): ${firstLine(e, /device|CDI|nvidia|gpus/i)}`,
      fix:
        engine === 'podman'
          ? 'install the NVIDIA Container Toolkit and make the CDI spec: nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml'
          : 'install the NVIDIA Container Toolkit, then: nvidia-ctk runtime configure --runtime=docker && systemctl restart docker',
    };
  return null;
}

/** The line saying why: the engine's error line that matches, else any that matches, else the first. */
const firstLine = (text: string, re: RegExp): string => {
  const lines = text.split('\n');
  return (lines.find((x) => re.test(x) && /error/i.test(x)) ?? lines.find((x) => re.test(x)) ?? lines[0] ?? '')
    .trim()
    .slice(0, 300);
};

export function launcherFor(l: Launcher | undefined, ctx: LaunchContext): CellLauncher {
  if (!l || l.type === 'local') return localLauncher();
  if (l.type === 'docker') return dockerLauncher(l, ctx);
  if (l.type === 'queue') throw new Error(`internal: cell ${ctx.cellId} runs on a queue, not through a launcher`);
  return sshLauncher(l, ctx);
}
