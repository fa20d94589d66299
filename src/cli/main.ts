// The gpen-lab command line: one file per command; this one wires them and owns error reporting (index.ts loads it
// after starting the CUDA warm-up).
import { Command, CommanderError } from 'commander';
import { GpenLabError } from '../errors.js';
import { demoCommand } from './demo.js';
import { modelCommand } from './model.js';
import { printJson, reportError } from './output.js';
import { detectCommand, restoreCommand } from './restore.js';
import { setupCommand } from './setup.js';
import { doctorCommand } from './doctor.js';
import { labCommand, reportCommand } from './lab.js';
import { serveCommand } from './serve.js';
import { benchCommand } from './bench.js';

const argv = process.argv;
const debug = argv.includes('--debug');
const json = argv.includes('--json');

const program = new Command('gpen-lab')
  .description('GPEN face restoration, and a lab that proves where and how well it runs')
  .version('0.1.0')
  .option('--debug', 'print stacks with errors')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

program.addCommand(labCommand());
program.addCommand(reportCommand());
program.addCommand(serveCommand());
program.addCommand(benchCommand());
program.addCommand(restoreCommand());
program.addCommand(detectCommand());
program.addCommand(modelCommand());
program.addCommand(setupCommand());
program.addCommand(doctorCommand());
program.addCommand(demoCommand());
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
      printJson({ error: { code: 'E_ARGUMENT', message: e.message.replace(/^error: /, ''), fix: 'Run the command with --help for its arguments.', details: { commander: e.code } } });
    }
  } else if (e instanceof GpenLabError || e instanceof Error) {
    process.exitCode = reportError(e, { debug, json });
  } else {
    process.exitCode = reportError(new Error(String(e)), { debug, json });
  }
}
