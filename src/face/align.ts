// Pure geometry: GPEN's FFHQ reference points, the least-squares similarity fit (Umeyama), and 2x3 affine algebra.
import type { FaceLandmarks, Pt } from './types.js';

/** x' = a*x + b*y + c ; y' = d*x + e*y + f */
export type Affine = [number, number, number, number, number, number];

/**
 * GPEN's reference points for a 512 crop (get_reference_facial_points((512,512), 0.25, (0,0), True)): eyes as seen
 * in the image, nose tip, mouth corners. They scale linearly with the crop size.
 */
export const FFHQ_REF_512: Readonly<Record<'left_eye' | 'right_eye' | 'nose' | 'mouth_left' | 'mouth_right', Pt>> = {
  left_eye: [202.04, 242.88],
  right_eye: [309.43, 242.29],
  nose: [256.08, 303.96],
  mouth_left: [211.96, 366.83],
  mouth_right: [300.89, 366.34],
};

export function referencePoints(size: number): typeof FFHQ_REF_512 & { mouth: Pt } {
  const s = size / 512;
  const sc = (p: Pt): Pt => [p[0] * s, p[1] * s];
  const r = FFHQ_REF_512;
  return {
    left_eye: sc(r.left_eye),
    right_eye: sc(r.right_eye),
    nose: sc(r.nose),
    mouth_left: sc(r.mouth_left),
    mouth_right: sc(r.mouth_right),
    // BlazeFace gives the mouth centre: it maps to the corners' midpoint
    mouth: sc([(r.mouth_left[0] + r.mouth_right[0]) / 2, (r.mouth_left[1] + r.mouth_right[1]) / 2]),
  };
}

/**
 * Least-squares similarity (rotation, uniform scale, translation; no reflection) taking src onto dst: Umeyama's
 * closed form, which in 2-D is z' = k z + t with k = Σ(z'-m')·conj(z-m) / Σ|z-m|² over complex points.
 */
export function umeyama(src: readonly Pt[], dst: readonly Pt[]): Affine {
  if (src.length !== dst.length || src.length < 2) throw new Error('umeyama needs two or more point pairs');
  const n = src.length;
  let mx = 0,
    my = 0,
    nx = 0,
    ny = 0;
  for (let i = 0; i < n; i++) {
    mx += src[i][0];
    my += src[i][1];
    nx += dst[i][0];
    ny += dst[i][1];
  }
  mx /= n;
  my /= n;
  nx /= n;
  ny /= n;
  let re = 0,
    im = 0,
    den = 0;
  for (let i = 0; i < n; i++) {
    const x = src[i][0] - mx,
      y = src[i][1] - my,
      u = dst[i][0] - nx,
      v = dst[i][1] - ny;
    re += u * x + v * y;
    im += v * x - u * y;
    den += x * x + y * y;
  }
  if (den === 0) throw new Error('umeyama: the source points coincide');
  const a = re / den,
    b = im / den;
  return [a, -b, nx - (a * mx - b * my), b, a, ny - (b * mx + a * my)];
}

export function applyAffine(m: Affine, p: Pt): Pt {
  return [m[0] * p[0] + m[1] * p[1] + m[2], m[3] * p[0] + m[4] * p[1] + m[5]];
}

export function invertAffine(m: Affine): Affine {
  const [a, b, c, d, e, f] = m;
  const det = a * e - b * d;
  if (det === 0) throw new Error('singular affine transform');
  return [e / det, -b / det, (b * f - c * e) / det, -d / det, a / det, (c * d - a * f) / det];
}

/** Linear scale factor of a similarity (how many output pixels one input pixel spans). */
export function affineScale(m: Affine): number {
  return Math.sqrt(Math.abs(m[0] * m[4] - m[1] * m[3]));
}

/** The similarity taking a face's landmarks onto GPEN's reference for a crop of `size`. */
export function alignTransform(lm: FaceLandmarks, size: number): Affine {
  const ref = referencePoints(size);
  const src: Pt[] = [lm.left_eye, lm.right_eye, lm.nose];
  const dst: Pt[] = [ref.left_eye, ref.right_eye, ref.nose];
  if (lm.mouth_left && lm.mouth_right) {
    src.push(lm.mouth_left, lm.mouth_right);
    dst.push(ref.mouth_left, ref.mouth_right);
  } else if (lm.mouth) {
    src.push(lm.mouth);
    dst.push(ref.mouth);
  }
  return umeyama(src, dst);
}
