// The service's memory bound: the decoded pixels that the images in progress may hold together, from the machine's
// memory and what one pixel in progress costs the process at its peak (measured by the 64 MP flood: docs/service.md).
import os from 'node:os';

/** Bytes of resident memory one decoded pixel in progress costs at the peak (decode, copies, pyramid, paste, encode). */
export const BYTES_PER_PIXEL = 20;
/** The share of the machine's memory that the images in progress may take by default. */
export const MEMORY_SHARE = 0.25;

/** The default budget in pixels: MEMORY_SHARE of `totalBytes` at BYTES_PER_PIXEL, and at least one image of maxPixels. */
export function defaultPixelBudget(maxPixels: number, totalBytes: number = os.totalmem()): number {
  return Math.max(maxPixels, Math.floor((totalBytes * MEMORY_SHARE) / BYTES_PER_PIXEL));
}
