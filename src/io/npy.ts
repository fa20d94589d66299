// NumPy .npy reader/writer for float32/float16 C-order arrays. Hand-written: the format is one header line, and the
// registry's npy packages either only read or pull in a tensor library.
import { GpenLabError } from '../errors.js';
import type { DType, HostTensor } from './tensor.js';
import { numel } from './tensor.js';
import { readInputFile, writeFileAtomicSafe } from './files.js';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

function invalid(file: string, why: string): GpenLabError {
  return new GpenLabError(
    'E_NPY_INVALID',
    `Not a usable .npy array: ${file}: ${why}`,
    'Save a float32 (or float16) little-endian C-order array with numpy.save, e.g. np.save(f, x.astype(np.float32)).',
    { input: file },
  );
}

export function decodeNpy(buf: Buffer, file = '<buffer>'): HostTensor {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw invalid(file, 'the NumPy magic bytes are missing');
  const major = buf[6];
  let headerLen: number;
  let offset: number;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw invalid(file, 'the header is truncated');
    headerLen = buf.readUInt32LE(8);
    offset = 12;
  } else {
    throw invalid(file, `format version ${major} is unknown`);
  }
  if (offset + headerLen > buf.length) throw invalid(file, 'the header is truncated');
  const header = buf.subarray(offset, offset + headerLen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw invalid(file, 'the header is malformed');
  if (fortran === 'True') throw invalid(file, 'Fortran order is not supported');
  let dtype: DType;
  if (descr === '<f4' || descr === '=f4') dtype = 'float32';
  else if (descr === '<f2' || descr === '=f2') dtype = 'float16';
  else throw invalid(file, `dtype ${descr} is not float32 or float16`);
  const dims = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) throw invalid(file, `shape (${shapeText}) is malformed`);
  const start = offset + headerLen;
  const bytesPer = dtype === 'float32' ? 4 : 2;
  const n = numel(dims);
  if (buf.length - start !== n * bytesPer) {
    throw invalid(
      file,
      `expected ${n * bytesPer} data bytes for shape (${dims.join(', ')}) but found ${buf.length - start}`,
    );
  }
  const copy = new ArrayBuffer(n * bytesPer);
  new Uint8Array(copy).set(buf.subarray(start));
  const data = dtype === 'float32' ? new Float32Array(copy) : new Uint16Array(copy);
  return { dtype, dims, data };
}

export function encodeNpy(t: HostTensor): Buffer {
  const descr = t.dtype === 'float32' ? '<f4' : '<f2';
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  MAGIC.copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}

export async function readNpy(file: string): Promise<HostTensor> {
  return decodeNpy(await readInputFile(file, 'a .npy array'), file);
}

export async function writeNpy(file: string, t: HostTensor): Promise<void> {
  await writeFileAtomicSafe(file, encodeNpy(t));
}
