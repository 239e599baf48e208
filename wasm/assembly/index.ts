// The hot path's WASM module. One instance runs in each worker thread, all on the same
// imported shared memory, so the module keeps no state of its own: every value lives at a
// fixed offset from ../layout.ts (the same file the JS side compiles, so the numbers cannot
// drift) and is read and written with atomics. Nothing here may allocate: see layout.ts.
import {
  LAYOUT_VERSION,
  HDR_GENERATION,
  HDR_FLAGS
} from "../layout";
export * from "./ip-match";
export * from "./rate-limit";
export * from "./block-list";

/** The layout version this module was compiled against; the loader compares it with its own. */
export function layoutVersion(): u32 {
  return LAYOUT_VERSION;
}

/** End of this module's static data; the loader checks it stays below the header. */
export function staticDataEnd(): u32 {
  return <u32>__heap_base;
}

/** The config generation in the header. */
export function generation(): u32 {
  return atomic.load<u32>(HDR_GENERATION);
}

/** Publishes a config generation with one atomic store. */
export function setGeneration(g: u32): void {
  atomic.store<u32>(HDR_GENERATION, g);
}

/** The header's flag bits. */
export function flags(): u32 {
  return atomic.load<u32>(HDR_FLAGS);
}
