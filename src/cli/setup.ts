// `gpen-lab setup cuda`: install (or --remove) the CUDA and TensorRT execution provider libraries for the pinned
// onnxruntime-node. An explicit user step, never part of npm ci (230 MB).
import { Command } from 'commander';
import { GPU_PACKAGE, GPU_PACKAGE_VERSION, setupCuda } from '../doctor/setup-cuda.js';
import { printJson } from './output.js';

export function setupCommand(): Command {
  const setup = new Command('setup').description('install optional runtime pieces');
  setup.addCommand(
    new Command('cuda')
      .description(
        `install the CUDA (and TensorRT) execution providers from ${GPU_PACKAGE}@${GPU_PACKAGE_VERSION} next to libonnxruntime.so.1`,
      )
      .option('--from <tgz|dir>', 'install from this npm tarball or folder instead of the npm registry')
      .option('--no-tensorrt', 'leave out the TensorRT provider')
      .option('--remove', 'remove the provider libraries')
      .option('--json', 'machine-readable output')
      .action(async (o: { from?: string; tensorrt: boolean; remove?: boolean; json?: boolean }) => {
        const log = (l: string) => process.stderr.write(`${l}\n`);
        const r = await setupCuda({
          ...(o.from ? { from: o.from } : {}),
          tensorrt: o.tensorrt,
          remove: !!o.remove,
          log,
        });
        if (o.json) printJson(r);
        else {
          const done = r.actions.filter(
            (a) => a.action === 'installed' || a.action === 'replaced' || a.action === 'removed',
          ).length;
          process.stdout.write(
            o.remove
              ? `${done} provider file(s) removed from ${r.binDir}\n`
              : `${done ? `${done} file(s) installed` : 'nothing to do: already installed'} in ${r.binDir}; check with: gpen-lab doctor --provider cuda\n`,
          );
        }
      }),
  );
  return setup;
}
