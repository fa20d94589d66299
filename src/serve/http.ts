// The service's request parsing and response shapes, beside server.ts: query and multipart options, the framework's
// multipart failures as the client's coded errors, a coded error's HTTP status, and the JSON body of a result.
import path from 'node:path';
import { GpenLabError, checkOneOf, errorMessage } from '../errors.js';
import type { RestoreResult } from '../face/restore.js';
import { checkAlpha } from '../face/restore.js';
import type { OutputExt } from '../io/image.js';
import { OUTPUT_EXTS } from '../io/image.js';

export const STATUS: Partial<Record<string, number>> = {
  E_ARGUMENT: 400,
  E_NOT_FOUND: 404,
  E_BODY_TOO_LARGE: 413,
  E_FORMAT_UNKNOWN: 415,
  E_IMAGE_CORRUPT: 422,
  E_IMAGE_TOO_LARGE: 422,
  E_BUSY: 429,
  E_NOT_READY: 503,
  E_TIMEOUT: 504,
};
export const MIME: Record<OutputExt, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.webp': 'image/webp' };

/** The query's format names: the output formats, and jpeg for jpg. */
const FORMATS: Record<string, OutputExt> = {
  ...Object.fromEntries(OUTPUT_EXTS.map((e) => [e.slice(1), e])),
  jpeg: '.jpg',
};
const FORMAT_NAMES = Object.keys(FORMATS);
const BOOLEAN_WORDS = ['true', 'false', '1', '0', 'yes', 'no'] as const;

export function parseOptions(q: Record<string, unknown>): { alpha: number; ext: OutputExt; saveFace: boolean } {
  const alpha = q.alpha === undefined ? 1 : checkAlpha(q.alpha);
  const f = String(q.format ?? 'png')
    .toLowerCase()
    .replace(/^\./, '');
  const ext = FORMATS[checkOneOf('format', f, FORMAT_NAMES, `Pass format=${FORMAT_NAMES.join(', ')}.`)];
  const sf = String(q.save_faces ?? 'false').toLowerCase();
  const saveFace = checkOneOf('save_faces', sf, BOOLEAN_WORDS, 'Pass save_faces=true or false.');
  return { alpha, ext, saveFace: ['true', '1', 'yes'].includes(saveFace) };
}

/** A multipart body the service cannot read, as the client's error: over the limit (413), else malformed (400). */
export function multipartError(e: unknown, limit: number): GpenLabError {
  const code = (e as { code?: string }).code ?? '';
  const said = errorMessage(e);
  if (code === 'FST_FILES_LIMIT')
    return new GpenLabError(
      'E_ARGUMENT',
      'The multipart request has more than one file part',
      'Send one image per request.',
      { input: 'body' },
    );
  if (code === 'FST_FIELDS_LIMIT' || code === 'FST_PARTS_LIMIT')
    return new GpenLabError(
      'E_ARGUMENT',
      'The multipart request has too many fields',
      'Send the image and at most the options alpha, format and save_faces.',
      { input: 'body' },
    );
  if (code === 'FST_REQ_FILE_TOO_LARGE' || (e as { statusCode?: number }).statusCode === 413) {
    return new GpenLabError(
      'E_BODY_TOO_LARGE',
      `The uploaded file is over the limit of ${limit} bytes`,
      "Send a smaller image (the service's --body-limit-mb).",
      { input: 'body' },
    );
  }
  return new GpenLabError(
    'E_ARGUMENT',
    `The multipart body cannot be read: ${said}`,
    'Send a well-formed multipart/form-data body with its boundary, or the image as the raw body.',
    { input: 'body', framework: code || null },
  );
}

export function jsonResult(
  r: RestoreResult,
  images: [string, Buffer][],
  ext: OutputExt,
  synthetic: boolean,
): Record<string, unknown> {
  return {
    faces: r.faces,
    stages_ms: r.stages_ms,
    provider: r.provider,
    model: r.model,
    warnings: r.warnings,
    synthetic,
    image: { format: ext.slice(1), bytes: images[0][1].length, base64: images[0][1].toString('base64') },
    comparison: { format: ext.slice(1), base64: images[1][1].toString('base64') },
    face_images: images.slice(2).map(([f, b]) => ({ name: path.basename(f), base64: b.toString('base64') })),
  };
}
