// The shape every launcher has (local, docker, ssh): where the command sees a file, what to spawn here, how its
// own failures read. launchers.ts builds them.
import type { Finding } from '../doctor/types.js';

/** What to spawn here for one command. */
export interface Spawn {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** One run's end, as the launcher's diagnosis reads it. */
export interface RunEnd {
  spawnError: string | null;
  exitCode: number | null;
  stderr: string;
}

export interface CellLauncher {
  /** In words, for results.json: "local", "docker gpen:cu118 (--gpus all)", "ssh root@127.0.0.1:2222". */
  describe: string;
  /** The host the command runs on. */
  host: string;
  /** Where a local input is, as the command sees it. */
  inputPath(local: string): string;
  /** Where a local output path (inside the cell's folder) is, as the command sees it. */
  outputPath(local: string): string;
  /** Before a run: the inputs made visible there (ssh copies them; local and docker need nothing). */
  send(files: string[]): Promise<void>;
  /** The spawn that runs argv (its paths already placed) with `vars` set for it; `tag` names the run. */
  spawn(argv: string[], vars: Record<string, string>, tag: string): Spawn;
  /** After a run: its outputs brought back into the cell's folder (ssh), or nothing. */
  fetch(localOutputs: string[]): Promise<void>;
  /** After a timeout: whatever the run left running there (a container) stopped. */
  stop(tag: string): Promise<void>;
  /** The launcher's own failure in a run's end, or null where the command itself failed. */
  diagnose(end: RunEnd): Finding | null;
}

export interface LaunchContext {
  cellId: string;
  /** The cell's folder here: its outputs and logs. */
  cellDir: string;
  /** The cell's inputs here. */
  inputs: string[];
}
