// The hot path's WASM module. One instance runs in each worker thread, all on the same
// imported shared memory, so the module keeps no state of its own: every value lives at a
// fixed offset from ../layout.ts (the same file the JS side compiles, so the numbers cannot
// drift) and is read and written with atomics. Nothing here may allocate: see layout.ts.
import {
  LAYOUT_VERSION,
  HDR_GENERATION,
  HDR_FLAGS,
  COUNTER_TABLE_OFFSET,
  COUNTER_ENTRY_BYTES,
  COUNTER_ENTRIES,
  COUNTER_COUNT_FIELD
} from "../layout";
export * from "./ip-match";

// @ts-ignore: decorator
@lazy @inline const E_COUNTER_SLOT: string = "counter slot out of range";

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

/**
 * Adds `delta` to the count word of counter entry `slot` and returns the count before the
 * add: the primitive the rate limiter admits with (admit if the old count < limit), exact
 * however many threads add at once.
 */
export function counterAdd(slot: u32, delta: u32): u32 {
  // Without this check a large slot would wrap the u32 address into another region.
  if (slot >= <u32>COUNTER_ENTRIES) throw new RangeError(E_COUNTER_SLOT);
  return atomic.add<u32>(
    <usize>COUNTER_TABLE_OFFSET + <usize>slot * COUNTER_ENTRY_BYTES + COUNTER_COUNT_FIELD,
    delta
  );
}
