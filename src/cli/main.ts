// The gpen-lab command line: one file per command; this one wires them and owns error reporting (index.ts loads it
// after starting the CUDA warm-up).
import { Command, CommanderError } from 'commander';
import { GpenLabError } from '../errors.js';
import { printJson, reportError } from './output.js';

const argv = process.argv;
const debug = argv.includes('--debug');
const json = argv.includes('--json');

const program = new Command('gpen-lab')
  .description('GPEN face restoration, and a lab that proves where and how well it runs')
  .version('0.1.0')
  .option('--debug', 'print stacks with errors')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

// each command's module, loaded only when that command runs (all of them for help and unknown words): the modules of
// the other commands are ~40-60 ms of imports a cold restore does not need
const commands: Record<string, () => Promise<Command[]>> = {
  lab: async () => {
    const m = await import('./lab.js');
    return [m.labCommand(), m.reportCommand(), m.cellRunCommand()];
  },
  serve: async () => [(await import('./serve.js')).serveCommand()],
  bench: async () => [(await import('./bench.js')).benchCommand()],
  restore: async () => {
    const m = await import('./restore.js');
    return [m.restoreCommand(), m.detectCommand()];
  },
  model: async () => [(await import('./model.js')).modelCommand()],
  models: async () => [(await import('./models.js')).modelsCommand()],
  setup: async () => [(await import('./setup.js')).setupCommand()],
  doctor: async () => [(await import('./doctor.js')).doctorCommand()],
  demo: async () => [(await import('./demo.js')).demoCommand()],
  worker: async () => {
    const m = await import('./queue.js');
    return [m.workerCommand(), m.submitCommand(), m.jobsCommand()];
  },
};
const alias: Record<string, string> = {
  report: 'lab',
  'cell-run': 'lab',
  detect: 'restore',
  submit: 'worker',
  jobs: 'worker',
};
const word = argv.slice(2).find((a) => !a.startsWith('-'));
const only = word === undefined ? undefined : (commands[word] ?? commands[alias[word] ?? '']);
for (const load of only ? [only] : Object.values(commands)) for (const c of await load()) program.addCommand(c);
for (const c of program.commands) {
  c.exitOverride();
  for (const s of c.commands) s.exitOverride();
}

try {
  await program.parseAsync(argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // help and version exit 0; usage errors were already printed by commander (in --json, also as an error object)
    process.exitCode = e.exitCode === 0 ? 0 : 2;
    if (e.exitCode !== 0 && json) {
      printJson({
        error: {
          code: 'E_ARGUMENT',
          message: e.message.replace(/^error: /, ''),
          fix: 'Run the command with --help for its arguments.',
          details: { commander: e.code },
        },
      });
    }
  } else if (e instanceof GpenLabError || e instanceof Error) {
    process.exitCode = reportError(e, { debug, json });
  } else {
    process.exitCode = reportError(new Error(String(e)), { debug, json });
  }
}
