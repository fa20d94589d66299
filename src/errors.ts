// The one error class of gpen-lab: a closed set of codes, each with a message that names the input, what was
// expected and what to do. The CLI prints message and fix; the stack only with --debug.

export const ERROR_CODES = [
  'E_ARGUMENT', // a command-line or API argument out of range or of the wrong type
  'E_FILE_MISSING', // an input file does not exist
  'E_FILE_UNREADABLE', // an input exists but cannot be read (permissions, a directory, I/O)
  'E_FORMAT_UNKNOWN', // the file is none of the formats the command accepts
  'E_PTH_CORRUPT', // a .pth that is truncated or malformed (zip or pickle)
  'E_PTH_UNSAFE', // a pickle that asks for something outside the state-dict subset (never executed)
  'E_ONNX_CORRUPT', // an .onnx that cannot be decoded
  'E_NOT_GPEN', // a well-formed checkpoint or graph of another network
  'E_KEY_NOT_FOUND', // the nested key asked for (g_ema, params, ...) is not in the checkpoint
  'E_SHAPE_MISMATCH', // a tensor whose shape contradicts the architecture the others imply
  'E_SIZE_UNKNOWN', // a resolution GPEN does not define
  'E_NPY_INVALID', // a .npy that is not a float32/float16 little-endian C-order array of the expected shape
  'E_PROVIDER_UNKNOWN', // an execution provider name outside the closed set
  'E_PROVIDER_UNAVAILABLE', // a provider that this binary or machine cannot run
  'E_SESSION', // ONNX Runtime failed to create a session
  'E_INFERENCE', // ONNX Runtime failed while running a session
  'E_WRITE', // an output could not be written
  'E_OUTPUT_EXISTS', // an output file is already there and replacing it was not asked for
  'E_IMAGE_CORRUPT', // an image whose header reads but whose pixels do not (truncated, damaged)
  'E_IMAGE_TOO_LARGE', // an image with more pixels than the limit (decompression-bomb guard)
  'E_SETUP_SOURCE', // setup cuda: the package, archive or folder to install from is missing or is not the expected one
  'E_CHECKSUM', // a file whose sha256 differs from the value recorded in the project
  'E_NETWORK', // a download that failed: refused, not found, cut off, stalled, or of another size than expected
  'E_RUNTIME_VERSION', // the installed onnxruntime-node is not the version the provider files were built for
  'E_BUSY', // the service's queue is full: retry after the time it says
  'E_NOT_READY', // the service is still loading its model
  'E_TIMEOUT', // a request took longer than the service's per-request limit
  'E_BODY_TOO_LARGE', // a request body or upload over the service's limit
  'E_NOT_FOUND', // a service route that does not exist
  'E_CONFIG', // a lab config or results file that does not match its schema
  'E_NOT_ALLOWED', // a queued job asks a worker for what its own configuration does not allow (a command)
  'E_INTERNAL', // a bug: not caused by the input (reported with --debug)
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** What kind of failure a code is, and so the CLI's exit status: fix the input (2), the environment or runtime failed (3), a bug (4). */
export type FailureKind = 'input' | 'runtime' | 'internal';

export const FAILURE_KINDS: Readonly<Record<ErrorCode, FailureKind>> = Object.freeze({
  E_ARGUMENT: 'input',
  E_FILE_MISSING: 'input',
  E_FILE_UNREADABLE: 'input',
  E_FORMAT_UNKNOWN: 'input',
  E_PTH_CORRUPT: 'input',
  E_PTH_UNSAFE: 'input',
  E_ONNX_CORRUPT: 'input',
  E_NOT_GPEN: 'input',
  E_KEY_NOT_FOUND: 'input',
  E_SHAPE_MISMATCH: 'input',
  E_SIZE_UNKNOWN: 'input',
  E_NPY_INVALID: 'input',
  E_PROVIDER_UNKNOWN: 'input',
  E_OUTPUT_EXISTS: 'input',
  E_IMAGE_CORRUPT: 'input',
  E_IMAGE_TOO_LARGE: 'input',
  E_SETUP_SOURCE: 'input',
  E_CHECKSUM: 'input',
  E_CONFIG: 'input',
  E_NOT_ALLOWED: 'input',
  E_BODY_TOO_LARGE: 'input',
  E_NOT_FOUND: 'input',
  E_PROVIDER_UNAVAILABLE: 'runtime',
  E_SESSION: 'runtime',
  E_INFERENCE: 'runtime',
  E_WRITE: 'runtime',
  E_NETWORK: 'runtime',
  E_RUNTIME_VERSION: 'runtime',
  E_BUSY: 'runtime',
  E_NOT_READY: 'runtime',
  E_TIMEOUT: 'runtime',
  E_INTERNAL: 'internal',
});

export const EXIT_CODES: Readonly<Record<FailureKind, number>> = Object.freeze({ input: 2, runtime: 3, internal: 4 });

/** The CLI's exit status for a failure of this code. */
export function exitStatus(code: ErrorCode): number {
  return EXIT_CODES[FAILURE_KINDS[code]];
}

export interface ErrorDetails {
  /** The file or value the error is about. */
  input?: string;
  /** What ran or what the underlying library said. */
  [key: string]: unknown;
}

export class GpenLabError extends Error {
  readonly code: ErrorCode;
  /** One line telling the user what to do. */
  readonly fix: string;
  readonly details: ErrorDetails;

  constructor(
    code: ErrorCode,
    message: string,
    fix: string,
    details: ErrorDetails = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GpenLabError';
    this.code = code;
    this.fix = fix;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; fix: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, fix: this.fix, details: this.details };
  }
}

export function isGpenLabError(e: unknown): e is GpenLabError {
  return e instanceof GpenLabError;
}

/**
 * sharp-style argument message: `Expected X for NAME but received V of type T`. NAME is the option's key as the
 * library spells it (`alpha`, `faceThreads`); `details.option` carries it, so the CLI and the service can name their
 * own spelling of it (`--alpha`, `--face-threads`, `format`) with `renameOption`.
 */
export function badArgument(name: string, expected: string, received: unknown, fix?: string): GpenLabError {
  const shown = typeof received === 'string' ? JSON.stringify(received) : String(received);
  return new GpenLabError(
    'E_ARGUMENT',
    `Expected ${expected} for ${name} but received ${shown} of type ${typeof received}`,
    fix ?? `Pass ${expected} for ${name}.`,
    { input: name, option: name, received: shown },
  );
}

/** A flag's or a query's value read as a number (a string holding one); anything else as it is. */
function numeric(v: unknown): unknown {
  return typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
}

/** An integer in [min, max]; a string holding one (a flag's value) is read as that number. */
export function checkInteger(name: string, v: unknown, min: number, max: number, fix?: string): number {
  const n = numeric(v);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw badArgument(
      name,
      max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer between ${min} and ${max}`,
      v,
      fix,
    );
  }
  return n;
}

/** A finite number in [min, max] (with `above`, min itself excluded); a string holding one is read as that number. */
export function checkNumber(
  name: string,
  v: unknown,
  bounds: { min: number; max?: number; above?: boolean },
  fix?: string,
): number {
  const { min, max = Infinity, above = false } = bounds;
  const n = numeric(v);
  const ok = typeof n === 'number' && Number.isFinite(n) && (above ? n > min : n >= min) && n <= max;
  if (!ok) {
    const range = max === Infinity ? `${above ? 'above' : 'of at least'} ${min}` : `between ${min} and ${max}`;
    throw badArgument(name, `a number ${range}`, v, fix);
  }
  return n as number;
}

/** One value of a closed set. */
export function checkOneOf<T extends string>(name: string, v: unknown, values: readonly T[], fix?: string): T {
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v))
    throw badArgument(name, `one of ${values.join(', ')}`, v, fix);
  return v as T;
}

/** A comma-separated, non-empty list of values of a closed set, each once, in the order given. */
export function checkList<T extends string>(name: string, v: unknown, values: readonly T[], fix?: string): T[] {
  const items =
    typeof v === 'string'
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : [];
  if (items.length === 0 || items.some((i) => !(values as readonly string[]).includes(i))) {
    throw badArgument(name, `a comma-separated list of ${values.join(', ')}`, v, fix);
  }
  return [...new Set(items)] as T[];
}

/**
 * The same error with an option's key spelled as the caller knows it (`faceThreads` as `--face-threads` for the CLI):
 * every whole-word use of the key in message and fix. Errors that name no option come back as they are.
 */
export function renameOption(e: GpenLabError, spell: (key: string) => string): GpenLabError {
  const key = e.details.option;
  if (typeof key !== 'string') return e;
  const to = spell(key);
  if (to === key) return e;
  const word = new RegExp(`(?<![\\w.=-])${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w=-])`, 'g');
  const renamed = new GpenLabError(
    e.code,
    e.message.replace(word, to),
    e.fix.replace(word, to),
    { ...e.details, input: to },
    { cause: e.cause },
  );
  renamed.stack = e.stack;
  return renamed;
}

/** An option key as a CLI flag: `faceThreads` as `--face-threads`. */
export function flagOf(key: string): string {
  if (key.startsWith('-')) return key;
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** The one fix of an E_INTERNAL error. */
export const INTERNAL_FIX =
  'This is a bug in gpen-lab: re-run with --debug (the service: see its log) and report the stack.';

/** Any thrown value as a GpenLabError: a coded error as it is, anything else E_INTERNAL with the value as its cause. */
export function toGpenLabError(e: unknown): GpenLabError {
  return isGpenLabError(e) ? e : new GpenLabError('E_INTERNAL', errorMessage(e), INTERNAL_FIX, {}, { cause: e });
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
