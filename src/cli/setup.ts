// `gpen-lab setup cuda`: install (or --remove) the CUDA and TensorRT execution provider libraries of a runtime build:
// the one the NVIDIA driver runs, or the one --runtime names. An explicit user step, never part of npm ci.
import { Command, Option } from 'commander';
import { setupCuda } from '../doctor/setup-cuda.js';
import { RUNTIME_BUILDS, parseRuntimeBuild } from '../runtime/builds.js';
import { printJson } from './output.js';

export function setupCommand(): Command {
  const setup = new Command('setup').description('install optional runtime pieces');
  setup.addCommand(
    new Command('cuda')
      .description(
        'install the CUDA (and TensorRT) execution providers of the runtime build the NVIDIA driver runs (>= 580: ort1.29-cuda13, beside libonnxruntime.so.1; >= 525: ort1.19-cuda12, in the gpen-lab cache)',
      )
      .addOption(
        new Option('--runtime <build>', 'install this build whatever the driver (default: the newest it runs)').choices(
          [...RUNTIME_BUILDS],
        ),
      )
      .option(
        '--from <tgz|dir>',
        "install from this npm tarball or folder of the build's provider package (a folder may also hold the build's libonnxruntime, taken instead of npm pack)",
      )
      .option('--no-tensorrt', 'leave out the TensorRT provider')
      .option('--remove', "remove the provider libraries (without --runtime: every build's)")
      .option('--json', 'machine-readable output')
      .action(async (o: { runtime?: string; from?: string; tensorrt: boolean; remove?: boolean; json?: boolean }) => {
        const log = (l: string) => process.stderr.write(`${l}\n`);
        const r = await setupCuda({
          ...(o.runtime ? { runtime: parseRuntimeBuild(o.runtime) } : {}),
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
          const from = [...new Set(r.actions.filter((a) => a.action === 'removed').map((a) => a.build))];
          process.stdout.write(
            o.remove
              ? `${done} provider file(s) removed${from.length ? ` (${from.join(', ')})` : ''}\n`
              : `${r.runtime}: ${done ? `${done} file(s) installed` : 'nothing to do: already installed'} in ${r.binDir}${r.library && ['fetched', 'copied'].includes(r.library.action) ? ` (and ${r.library.path})` : ''}; check with: gpen-lab doctor --provider cuda\n`,
          );
        }
      }),
  );
  return setup;
}
