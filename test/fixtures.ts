// Where the shared fixtures live; tests fail loudly when they are missing (never skip).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const SHARED = fileURLToPath(new URL('../../shared/', import.meta.url));
export const GPEN_FIXTURES = path.join(SHARED, 'fixtures', 'gpen');
export const IMAGES = path.join(SHARED, 'images');

export function fixture(name: string): string {
  const p = path.join(GPEN_FIXTURES, name);
  if (!existsSync(p)) {
    throw new Error(
      `Shared fixture missing: ${p}. The tests need ../shared (beside the repository) with fixtures/gpen; check out the shared folder next to the clone.`,
    );
  }
  return p;
}

export interface FixtureConfig {
  name: string;
  size: number;
  channel_multiplier: number;
  narrow: number;
  params: number;
  cases: { input: string; output: string; output_std: number }[];
  sha256: Record<string, string>;
  upstream_onnx?: string;
}

export function fixtureConfig(name: string): FixtureConfig {
  return JSON.parse(readFileSync(fixture(`${name}.json`), 'utf8')) as FixtureConfig;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
