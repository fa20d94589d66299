// What every face detector returns, whatever its model: boxes, scores and named points in image coordinates.
import type { RgbImage } from '../io/image.js';

export type Pt = [number, number];

/** Named points, left and right as seen in the image (left_eye has the smaller x on an upright face). */
export interface FaceLandmarks {
  left_eye: Pt;
  right_eye: Pt;
  nose: Pt;
  /** Mouth centre (BlazeFace). */
  mouth?: Pt;
  /** Mouth corners (five-point detectors such as RetinaFace). */
  mouth_left?: Pt;
  mouth_right?: Pt;
}

export interface DetectedFace {
  /** [x1, y1, x2, y2] in image pixels. */
  box: [number, number, number, number];
  score: number;
  landmarks: FaceLandmarks;
  /** The detector's own point list, in its own order, image coordinates. */
  raw: Pt[];
}

export interface FaceDetector {
  readonly name: string;
  detect(img: RgbImage): Promise<DetectedFace[]>;
  release(): Promise<void>;
}
