// The fixed layout of the one shared WebAssembly.Memory (DESIGN.md, "Threads and memory").
//
// This file is the single source of truth for it, on both sides:
//   - tsc compiles it for JS (src/shared-memory.ts, the acceptor, the workers);
//   - asc compiles it into the WASM module: wasm/assembly/index.ts imports "../layout".
// So it must stay in the subset both compilers accept: `export const NAME = <integer
// expression of literals and other constants>`, nothing else (no type annotations, objects,
// functions or imports). asc types each constant as i32, so every value must stay below
// 2^31. The page counts in wasm/asconfig.json are the one copy that cannot import this file;
// test/wasm.test.ts checks them against MEMORY_PAGES, and since the module declares
// initial == maximum, instantiating it on a memory of any other size fails to link.
//
// All offsets are in bytes from the start of the memory. Every region starts on a 64 KiB
// page boundary, so no two regions share a cache line and each can be reasoned about alone.
//
//   0x0000_0000 +--------------------------------+
//               | STATIC: AssemblyScript's data  |  64 KiB  (asc places its static data here:
//   0x0001_0000 +--------------------------------+           memoryBase 0, see below)
//               | HEADER: magic, version, gen,   |  64 KiB  (64 bytes used, rest reserved)
//               |   flags, live IP table, ...    |
//   0x0002_0000 +--------------------------------+
//               | IP TABLE A                     |  64 MiB
//   0x0402_0000 +--------------------------------+
//               | IP TABLE B                     |  64 MiB  (HDR_IP_LIVE says which is live)
//   0x0802_0000 +--------------------------------+
//               | COUNTERS: 2^20 x 32-byte       |  32 MiB
//               |   entries, open addressing     |
//   0x0A02_0000 +--------------------------------+  = MEMORY_BYTES (160 MiB + 128 KiB)
//
// Why AssemblyScript's static data goes first (memoryBase 0) instead of past our regions:
// every instantiation in every thread re-applies the module's active data segments to the
// shared memory. Were they inside a region, a worker starting up would overwrite live
// header words or counters. At the bottom, in a page of their own, they only rewrite the
// same bytes, and a stray write through a null or small pointer lands there too, not in the
// header. asc begins the data at byte 1024; loadHotPath() refuses a module whose static
// data (its __heap_base) ends past HEADER_OFFSET, and test/wasm.test.ts checks the build.
//
// Why nothing is allocated in the module (asc --runtime stub, and no code that allocates):
// the stub allocator's bump pointer is a global of each instance, starting at __heap_base,
// but the memory is shared, so two workers that allocate would hand out the same bytes and
// overwrite each other. Only fixed regions, updated with atomics.
//
// Why initial == maximum: the layout is fixed, so the memory never grows. A shared memory
// that grew would give other threads a new, longer `memory.buffer`, and views made earlier
// would silently stop short; never growing keeps every view valid for the process's life.
// V8 reserves address space for the maximum anyway, and Linux backs pages only once they
// are touched, so the resident cost is what the tables actually use (at most ~160 MiB, of
// the 24 GiB this is sized for).

/** WebAssembly page size in bytes. */
export const PAGE_BYTES = 65536

/** Layout version: bump on any change to this file; the WASM module and JS must agree. */
export const LAYOUT_VERSION = 1

/** "TOLL" (bytes 54 4f 4c 4c) read as a little-endian u32: marks a memory made by createSharedMemory(). */
export const MAGIC = 0x4c4c4f54

/* ---------------- static data: asc's own, keep out ---------------- */

/** Start of AssemblyScript's static data (asc --memoryBase). */
export const STATIC_OFFSET = 0
/** Bytes reserved for AssemblyScript's static data. */
export const STATIC_BYTES = PAGE_BYTES

/* ---------------- header: one u32 word per field ---------------- */

/** Start of the header region. */
export const HEADER_OFFSET = STATIC_OFFSET + STATIC_BYTES
/** Bytes reserved for the header region (a page; only HEADER_FIELD_BYTES are named). */
export const HEADER_BYTES = PAGE_BYTES
/** u32 MAGIC, written last by createSharedMemory(). */
export const HDR_MAGIC = HEADER_OFFSET + 0
/** u32 LAYOUT_VERSION of the JS that created the memory. */
export const HDR_LAYOUT_VERSION = HEADER_OFFSET + 4
/** u32 config generation the workers should run; changed with one atomic store. */
export const HDR_GENERATION = HEADER_OFFSET + 8
/** u32 flag bits; none are defined yet, each gets a named constant here when it is. */
export const HDR_FLAGS = HEADER_OFFSET + 12
/** u32 which IP table is live: IP_TABLE_LIVE_A or IP_TABLE_LIVE_B. */
export const HDR_IP_LIVE = HEADER_OFFSET + 16
/** First of the reserved u32 words (zero), up to HEADER_OFFSET + HEADER_FIELD_BYTES. */
export const HDR_RESERVED = HEADER_OFFSET + 20
/** Bytes of named header fields and reserved words: 16 u32 words. */
export const HEADER_FIELD_BYTES = 64

/** HDR_IP_LIVE value: table A is live. */
export const IP_TABLE_LIVE_A = 0
/** HDR_IP_LIVE value: table B is live. */
export const IP_TABLE_LIVE_B = 1

/* ---------------- IP tables: double-buffered ---------------- */
// The next generation's table is built in the one that is not live, then HDR_IP_LIVE is
// switched with one atomic store. It is a word of its own, not derived from the generation,
// so that a generation that leaves the IP lists alone does not have to copy a table.
// 64 MiB each holds either a DIR-24-8 style IPv4 table (2^24 x 2-byte first level = 32 MiB,
// plus 32 MiB of 256-entry second-level blocks) or sorted range boundaries for ~1M IPv4
// CIDRs (2M x 8 bytes = 16 MiB) with room left for IPv6 ranges.

/** Bytes of each IP table. */
export const IP_TABLE_BYTES = 64 * 1024 * 1024
/** Start of IP table A. */
export const IP_TABLE_A_OFFSET = HEADER_OFFSET + HEADER_BYTES
/** Start of IP table B. */
export const IP_TABLE_B_OFFSET = IP_TABLE_A_OFFSET + IP_TABLE_BYTES

/* ---------------- rate-limit counters: open-addressed hash table ---------------- */
// Planned entry format (32 bytes, 8 u32 words, two entries per 64-byte cache line):
//   +0  key hash, low  u32 \  64-bit hash of policy id + client key; 0 means an empty slot
//   +4  key hash, high u32 /  (a key hashing to 0 is remapped). Linear probing on the low bits.
//   +8  window start   u32    coarse-clock tick the current window began at
//   +12 count          u32    requests in the current window: atomic.add, admitted if old < L
//   +16 previous count u32    the previous window's count, for sliding-window estimates
//   +20 state          u32    empty / claiming / live / tombstone; a slot is claimed by cmpxchg
//   +24 policy tag     u32    fingerprint of the policy config, so a counter survives an update
//                              that leaves its policy unchanged and is reset otherwise
//   +28 reserved       u32
// Only COUNTER_COUNT_FIELD is used so far (counterAdd); the next issue may reshape the rest.
// 2^20 entries = 32 MiB: a million distinct (policy, client) keys live at once.

/** Bytes per counter entry. */
export const COUNTER_ENTRY_BYTES = 32
/** Number of counter entries (a power of two, for masking the hash). */
export const COUNTER_ENTRIES = 1 << 20
/** Bytes of the counter table. */
export const COUNTER_TABLE_BYTES = COUNTER_ENTRY_BYTES * COUNTER_ENTRIES
/** Start of the counter table. */
export const COUNTER_TABLE_OFFSET = IP_TABLE_B_OFFSET + IP_TABLE_BYTES
/** Entry field: key hash, low word. */
export const COUNTER_KEY_LO_FIELD = 0
/** Entry field: key hash, high word. */
export const COUNTER_KEY_HI_FIELD = 4
/** Entry field: window start. */
export const COUNTER_WINDOW_FIELD = 8
/** Entry field: count in the current window (the word counterAdd updates). */
export const COUNTER_COUNT_FIELD = 12
/** Entry field: count in the previous window. */
export const COUNTER_PREV_COUNT_FIELD = 16
/** Entry field: slot state. */
export const COUNTER_STATE_FIELD = 20
/** Entry field: policy tag. */
export const COUNTER_POLICY_FIELD = 24

/* ---------------- the whole memory ---------------- */

/** Bytes of the whole memory: the end of the last region. */
export const MEMORY_BYTES = COUNTER_TABLE_OFFSET + COUNTER_TABLE_BYTES
/** Pages of the whole memory; asconfig.json's initialMemory and maximumMemory must equal it. */
export const MEMORY_PAGES = MEMORY_BYTES / PAGE_BYTES
