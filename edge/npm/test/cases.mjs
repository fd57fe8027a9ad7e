// Reads the shared conformance cases (shared/conformance/cases/*.jsonl) from a
// directory, by file. Only node:fs, so Deno runs it too (deno.test.mjs).

import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** The cases of every `*.jsonl` file in `dir`, by file, in file-name order. */
export function readConformanceCases(dir) {
  if (!existsSync(dir)) throw new Error(`conformance cases not found at ${dir} (set TOLLGATE_CONFORMANCE_DIR)`);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .map((file) => ({
      file,
      cases: readFileSync(`${dir}/${file}`, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l)),
    }));
}
