// One C API variant of `gpen-lab bench --isolate` in a process of its own (spawned by bench-isolate.ts): reads the job
// (the bench's options, one CUDA option set, one precision), measures it, writes the variant's JSON where the job
// says and its progress lines to stderr. A process of its own counts its GPU memory alone: P5.
import { readFileSync, writeFileSync } from 'node:fs';
import { capiVariant } from './bench-capi.js';
import type { IsolatedJob } from './bench-isolate.js';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as IsolatedJob;
const v = await capiVariant(job.options, job.cudaOptions, job.precision, (l) => process.stderr.write(`${l}\n`));
writeFileSync(job.out, JSON.stringify(v));
// koffi's and ONNX Runtime's threads need not hold the process open
process.exit(0);
