// Moments of a cold start (ms since the process started), recorded where they happen and reported by restore --json
// as startup_ms.marks: the timeline that says which step a cold start waited on.
const recorded: Record<string, number> = {};

/** Records `name` now (the first time only: a mark is when something first happened). */
export function mark(name: string): void {
  recorded[name] ??= performance.now();
}

/** The marks so far, in the order they happened. */
export function marks(): Record<string, number> {
  return Object.fromEntries(Object.entries(recorded).sort((a, b) => a[1] - b[1]));
}
