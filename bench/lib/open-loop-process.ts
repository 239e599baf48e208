// The open-loop generator (bench/open-loop.ts) run as its own process, as every bench
// runner runs it: its own event loop, so the subject's latency is not the runner's.
import type { OpenLoopResult, OpenLoopSpec } from '../open-loop.js'
import { runCaptured } from './children.js'

/** How long past its own duration (and warm-up) the generator may take before it is stopped. */
const OVERRUN_MS = 30_000

export async function runOpenLoop (root: string, spec: OpenLoopSpec): Promise<OpenLoopResult> {
  const r = await runCaptured(process.execPath, [`${root}/dist/bench/open-loop.js`, JSON.stringify(spec)], spec.durationSec * 1000 + OVERRUN_MS)
  if (r.timedOut) throw new Error(`the open-loop generator ran past ${spec.durationSec}s + ${OVERRUN_MS / 1000}s and was stopped`)
  if (r.code !== 0) throw new Error(`the open-loop generator failed (${r.signal ?? `code ${r.code}`}): ${r.stderr}`)
  return JSON.parse(r.stdout) as OpenLoopResult
}
