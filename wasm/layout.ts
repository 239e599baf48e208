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
//               | COUNTERS: 2^21 x 16-byte       |  32 MiB
//               |   entries, open addressing     |
//   0x0A02_0000 +--------------------------------+
//               | BLOCKS: header page, then 2^16 |  4 MiB + 64 KiB
//               |   64-byte entries: IP -> until |
//   0x0A43_0000 +--------------------------------+  = MEMORY_BYTES (164 MiB + 192 KiB)
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
export const LAYOUT_VERSION = 5

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
/**
 * u32 seed of the rate-limit key hash (src/rate-limit/hash.ts): 0 until the first
 * RateLimitCounters on the memory sets a random one with one cmpxchg (rateLimitSeed in
 * wasm/assembly/rate-limit.ts); then the same for every thread of the process.
 */
export const HDR_HASH_SEED = HEADER_OFFSET + 20
/**
 * u32 counter-table slot mask: entries in use - 1 (a power of two minus one, at most
 * COUNTER_ENTRIES - 1). Set once before any counter is used (config `counters.entries`) and
 * never changed while the process runs: probing depends on it.
 */
export const HDR_COUNTER_MASK = HEADER_OFFSET + 24
/** First of the reserved u32 words (zero), up to HEADER_OFFSET + HEADER_FIELD_BYTES. */
export const HDR_RESERVED = HEADER_OFFSET + 28
/** Bytes of named header fields and reserved words: 16 u32 words. */
export const HEADER_FIELD_BYTES = 64

/*
 * Per-worker stats, in the header page after the fields: one 64-byte cache line per worker
 * slot, so workers updating their own counts never share a line (no false sharing). Each
 * worker writes only its own line with Atomics; the acceptor reads them for GET /status.
 *   +0 u32 generation the worker serves new requests under (0: not serving)
 *   +4 u32 requests in flight (all generations)
 *   +8 u32 requests served (wraps)
 */
export const WORKER_STATS_OFFSET = HEADER_OFFSET + 4096
/** Bytes per worker's stats line. */
export const WORKER_STATS_BYTES = 64
/** Most worker slots the stats area holds (the config allows at most 256 workers). */
export const WORKER_STATS_MAX = 256
/** Stats field: generation. */
export const WORKER_STAT_GENERATION = 0
/** Stats field: requests in flight. */
export const WORKER_STAT_IN_FLIGHT = 4
/** Stats field: requests served. */
export const WORKER_STAT_SERVED = 8

/** HDR_IP_LIVE value: table A is live. */
export const IP_TABLE_LIVE_A = 0
/** HDR_IP_LIVE value: table B is live. */
export const IP_TABLE_LIVE_B = 1

/* ---------------- IP tables: double-buffered ---------------- */
// The next generation's table is built in the one that is not live, then HDR_IP_LIVE is
// switched with one atomic store. It is a word of its own, not derived from the generation,
// so that a generation that leaves the IP lists alone does not have to copy a table.
//
// Protocol (src/ip/table-writer.ts is the writer, wasm/assembly/ip-match.ts the reader):
//   1. The acceptor writes the whole next table into the region that is NOT live, with plain
//      stores, and only once no reader is pinned to that region any more (every worker has
//      acknowledged a generation that uses the live one, and requests of older generations
//      have finished: a request runs start to end under one generation).
//   2. It switches HDR_IP_LIVE to that region with one Atomics.store, then publishes the
//      generation that uses it. The store is seq-cst: every table write made before it
//      happens-before whatever a reader does after an Atomics.load that sees the new value.
//   3. A reader pins a region per request (the caller reads HDR_IP_LIVE, or takes the region
//      its generation was built with, once; never per lookup). While anyone is pinned to a
//      region nobody writes it, so lookups use plain loads and can never see a half-written
//      table: immutability while read, not atomics, is what makes the data loads safe.
//
// One region (A or B). Offsets are from the region's start, so a table means the same in
// either. An "IP set" is one list of CIDRs (e.g. one ip-filter's allow list), named by its
// index in the directory (its set id).
//
//   +0       +----------------------------------------------------------------------+
//            | region header (IP_REGION_HEADER_BYTES), u32 words:                   |
//            |   IP_SET_COUNT_FIELD   sets in the directory; 0 = nothing written    |
//            |   IP_V4_TOTAL_FIELD    IPv4 ranges in all sets (after merging)       |
//            |   IP_V6_TOTAL_FIELD    IPv6 ranges in all sets (after merging)       |
//            |   IP_DATA_END_FIELD    first byte past the last data block           |
//            |   rest reserved (zero)                                               |
//   +64      +----------------------------------------------------------------------+
//            | directory: IP_SETS_MAX entries of IP_DIR_ENTRY_BYTES (64 = one cache |
//            | line, so one miss fetches all a lookup needs to find its window):    |
//            |   set s at IP_DIR_OFFSET + s * IP_DIR_ENTRY_BYTES                    |
//            |   +0  IP_DIR_V4_AT_FIELD     u32  byte offset of the v4 block        |
//            |   +4  IP_DIR_V4_COUNT_FIELD  u32  n4 ranges (0: no IPv4 in the set)  |
//            |   +8  IP_DIR_V4_BITS_FIELD   u32  b4: the index has 2^b4 buckets     |
//            |   +12 IP_DIR_V4_SHIFT_FIELD  u32  s4: bucket = (ip - min4) >> s4     |
//            |   +16 IP_DIR_V4_MIN_FIELD    u32  min4 = start[0]                    |
//            |   +20 reserved (12 bytes)                                            |
//            |   +32 IP_DIR_V6_AT_FIELD     u32  byte offset of the v6 block        |
//            |   +36 IP_DIR_V6_COUNT_FIELD  u32  n6                                 |
//            |   +40 IP_DIR_V6_BITS_FIELD   u32  b6                                 |
//            |   +44 IP_DIR_V6_SHIFT_FIELD  u32  s6 (0..127, on 128-bit values)     |
//            |   +48 IP_DIR_V6_MIN_FIELD    16 bytes: min6 = start[0], as below     |
//   +IP_DATA_OFFSET +---------------------------------------------------------------+
//            | data: one v4 and one v6 block per set that has such ranges, each     |
//            | starting on an IP_BLOCK_ALIGN (64-byte) line                         |
//            |                                                                      |
//            |  v4 block:  range[0 .. n4-1]   IP_V4_RANGE_BYTES (8) each:           |
//            |               +0 start u32, +4 end u32                               |
//            |             index[0 .. 2^b4]   u32 each (2^b4 + 1 entries)           |
//            |                                                                      |
//            |  v6 block:  range[0 .. n6-1]   IP_V6_RANGE_BYTES (32) each:          |
//            |               +0 start hi u64, +8 start lo u64,                      |
//            |               +16 end hi u64,  +24 end lo u64                        |
//            |             index[0 .. 2^b6]   u32 each                              |
//            |   (hi = address bits 127..64, lo = bits 63..0, each a little-endian  |
//            |    u64, so one i64.load reads it; as u32 words: w1 w0 w3 w2)         |
//            |  ... up to IP_DATA_END_FIELD; from there to IP_TABLE_BYTES unused    |
//            +----------------------------------------------------------------------+
//
// Ranges are inclusive [start, end] address intervals. In a block they are sorted by start,
// disjoint and not adjacent: overlapping and touching CIDRs are merged when the table is
// compiled (end[i] + 1 < start[i + 1]). So "ip is in the set" is "the last range with
// start <= ip has ip <= end": a binary search over the starts, then a look at that end,
// which sits beside its start, in the same cache line.
//
// The index narrows the search to a few ranges. A lookup is bounded by dependent cache
// misses, not instructions: a plain binary search over 1M ranges is ~20 dependent loads,
// the last several of them misses, while directory -> index -> one or two lines of ranges
// is two or three (measured here, 1M IPv4 ranges, WASM alone: 150-350 ns before the
// index, 35-105 ns with it; the spread is whatever else the machine was running).
//
// Bucket k covers the addresses [min + k << s, min + (k + 1) << s); index[k] = how many
// ranges start below min + k << s (index[0] = 0, index[2^b] = n). The range holding ip,
// if any, is the last one with start <= ip, so it is among ranges
// index[k] - 1 .. index[k + 1] - 1, where k is ip's bucket, clamped to 0 .. 2^b - 1 (an
// ip below min wraps around to a huge bucket and clamps: still correct, since no range
// then passes the final start <= ip check). The writer picks b for ~2 ranges a bucket
// (b = 0, one bucket, for sets of up to 8 ranges; at most IP_INDEX_BITS_MAX) and s as the
// least shift with (end[n-1] - min) >> s < 2^b, so buckets span the set's own addresses,
// not the whole family: 10k IPv6 /48s inside one /32 spread over all buckets instead of
// sharing one. Still O(log n) for a skewed set: a crowded bucket is just a longer window
// for the binary search.
//
// IPv4 and IPv6 live in separate blocks and never match each other: 0.0.0.0/0 is all of
// IPv4 only, ::/0 all of IPv6 only. IPv4-mapped (::ffff:a.b.c.d) and dotted IPv4-compatible
// (::a.b.c.d) addresses and CIDRs are IPv4, both in the table and at lookup (src/ip/parse.ts).
//
// Capacity: the data area (IP_DATA_BYTES, just under 64 MiB) takes 8 bytes per IPv4 range
// and 32 per IPv6 range, plus 2-4 bytes a range of index (at most 4 * 2^IP_INDEX_BITS_MAX
// + 4 bytes a block) and up to 126 bytes of line padding per set: one set of 7.8M IPv4 or
// 1.95M IPv6 ranges; at worst (many sets of just over 2^k ranges) 5.5M IPv4 or 1.85M IPv6;
// 1M IPv4 + 1M IPv6 ranges take 42 MiB.

/** Bytes of each IP table. */
export const IP_TABLE_BYTES = 64 * 1024 * 1024
/** Start of IP table A. */
export const IP_TABLE_A_OFFSET = HEADER_OFFSET + HEADER_BYTES
/** Start of IP table B. */
export const IP_TABLE_B_OFFSET = IP_TABLE_A_OFFSET + IP_TABLE_BYTES
/** Bytes of a region's header (offsets below are from the region's start). */
export const IP_REGION_HEADER_BYTES = 64
/** Region header u32: number of sets in the directory. */
export const IP_SET_COUNT_FIELD = 0
/** Region header u32: IPv4 ranges in all sets. */
export const IP_V4_TOTAL_FIELD = 4
/** Region header u32: IPv6 ranges in all sets. */
export const IP_V6_TOTAL_FIELD = 8
/** Region header u32: end of the last data block. */
export const IP_DATA_END_FIELD = 12
/** Most sets in one region (set ids are 0 .. IP_SETS_MAX - 1). */
export const IP_SETS_MAX = 4096
/** Start of the set directory. */
export const IP_DIR_OFFSET = IP_REGION_HEADER_BYTES
/** Bytes per directory entry: a cache line. */
export const IP_DIR_ENTRY_BYTES = 64
/** Directory entry u32: byte offset (from the region's start) of the set's IPv4 block. */
export const IP_DIR_V4_AT_FIELD = 0
/** Directory entry u32: IPv4 ranges in the set. */
export const IP_DIR_V4_COUNT_FIELD = 4
/** Directory entry u32: log2 of the IPv4 index's bucket count. */
export const IP_DIR_V4_BITS_FIELD = 8
/** Directory entry u32: right shift from (ip - min) to an IPv4 bucket. */
export const IP_DIR_V4_SHIFT_FIELD = 12
/** Directory entry u32: the set's lowest IPv4 range start. */
export const IP_DIR_V4_MIN_FIELD = 16
/** Directory entry u32: byte offset (from the region's start) of the set's IPv6 block. */
export const IP_DIR_V6_AT_FIELD = 32
/** Directory entry u32: IPv6 ranges in the set. */
export const IP_DIR_V6_COUNT_FIELD = 36
/** Directory entry u32: log2 of the IPv6 index's bucket count. */
export const IP_DIR_V6_BITS_FIELD = 40
/** Directory entry u32: right shift from (ip - min) to an IPv6 bucket (0..127). */
export const IP_DIR_V6_SHIFT_FIELD = 44
/** Directory entry, 16 bytes: the set's lowest IPv6 range start (u64 hi, u64 lo). */
export const IP_DIR_V6_MIN_FIELD = 48
/** Start of the data blocks. */
export const IP_DATA_OFFSET = IP_DIR_OFFSET + IP_SETS_MAX * IP_DIR_ENTRY_BYTES
/** Bytes of the data area. */
export const IP_DATA_BYTES = IP_TABLE_BYTES - IP_DATA_OFFSET
/** Alignment of each data block: a cache line. */
export const IP_BLOCK_ALIGN = 64
/** Bytes per IPv4 range: u32 start, u32 end. */
export const IP_V4_RANGE_BYTES = 8
/** Bytes per IPv6 range: 16-byte start, 16-byte end. */
export const IP_V6_RANGE_BYTES = 32
/** Offset of a range's end in an IPv4 range. */
export const IP_V4_END_FIELD = 4
/** Offset of a range's end in an IPv6 range. */
export const IP_V6_END_FIELD = 16
/** Most index bits: 2^20 buckets, a 4 MiB index (for sets of over 1M ranges). */
export const IP_INDEX_BITS_MAX = 20
/** Bytes per index entry (u32). */
export const IP_INDEX_ENTRY_BYTES = 4

/* ---------------- rate-limit counters: open-addressed hash table ---------------- */
// Entry format (16 bytes, two little-endian u64 words, four entries per 64-byte cache line):
//   +0  key    u64  64-bit hash of (policy id, algorithm, window, client key), seeded per
//                   process (HDR_HASH_SEED); 0 = never used, 1 = tombstone. Real keys have a
//                   non-zero high word, so they are never 0 or 1.
//   +8  state  u64  the counter, written only by i64 cmpxchg/store: a time in ticks of 2^-22
//                   ms at which it expires (window end << 22 | count, or a GCRA TAT), or one
//                   of two sentinels at the top (LOCKED, KILLED) while a slot changes owner.
// wasm/assembly/rate-limit.ts has the encodings and the lock-free claim protocol.
// Linear probing from (key & (COUNTER_ENTRIES - 1)), over at most COUNTER_PROBE_LIMIT slots;
// a key that finds no free or expired slot there gets the "table full" result, and the
// policy's configured behaviour applies (deny, or allow and count).
// SIZE: for now the entry count is this layout constant, not a config setting: 2^21 entries
// (32 MiB) hold ~2M live counters (a sliding-window client takes two). Making it a setting
// means sizing the memory at startup instead of from this file.

/** Bytes per counter entry. */
export const COUNTER_ENTRY_BYTES = 16
/** Number of counter entries (a power of two, for masking the hash). */
export const COUNTER_ENTRIES = 1 << 21
/** Bytes of the counter table. */
export const COUNTER_TABLE_BYTES = COUNTER_ENTRY_BYTES * COUNTER_ENTRIES
/** Start of the counter table. */
export const COUNTER_TABLE_OFFSET = IP_TABLE_B_OFFSET + IP_TABLE_BYTES
/** Entry field: u64 key hash (low word first). */
export const COUNTER_KEY_FIELD = 0
/** Entry field: u64 state. */
export const COUNTER_STATE_FIELD = 8
/** Most slots a key's probe sequence visits from its home slot; past them, "table full". */
export const COUNTER_PROBE_LIMIT = 32
/** An expired counter may go to another key only this long (ms) after it expired. */
export const COUNTER_RECLAIM_GRACE_MS = 1000

/* ---------------- blocks: the temporary deny list (threat-guard) ---------------- */
// IP -> "blocked until" for every worker at once: threat-guard writes an entry when a client
// crosses its threshold, every threat-guard instance in every worker reads it per request,
// and the admin API (acceptor) lists and clears entries. wasm/assembly/block-list.ts has the
// protocol; in short: writers (rare: a block placed or lifted) take one lock word in the
// region's header page; readers take no lock and read an entry between two loads of its
// sequence word (a seqlock: odd = being written), retrying if it moved.
//
// Region header (u32/u64 words at the start of the region's first page):
//   +0  BLOCK_LOCK_FIELD        u64  0 = free, else the holder's Date.now() (a stale holder,
//                                    over BLOCK_LOCK_STALE_MS, is taken over)
//   +8  BLOCK_PLACED_FIELD      u32  blocks placed since start (the autoblocks metric; wraps)
//   +12 BLOCK_FULL_FIELD        u32  blocks that found no slot in their probe range
// Entries start on the next page, BLOCK_ENTRY_BYTES (one cache line) each:
//   +0  BLOCK_SEQ_FIELD         u32  seqlock word: even = stable, odd = being written;
//                                    0 and family 0 = never used (lookups stop there)
//   +4  BLOCK_FAMILY_FIELD      u32  4 or 6 (0: never used)
//   +8  BLOCK_IP_FIELD          4 x u32  the address as parseIp() gives it (IPv4 in word 0)
//   +24 BLOCK_EPOCH_FIELD       u32  bumped each time a block of this address ends early
//                                    (DELETE /blocks) or is placed: threat-guard keys its
//                                    strike counters with it, so a lifted block starts afresh
//   +28 BLOCK_COUNT_FIELD       u32  bad responses counted when the block was placed
//   +32 BLOCK_UNTIL_FIELD       u64  blocked while Date.now() < until (ms); 0 = not blocked
//   +40 BLOCK_SINCE_FIELD       u64  when the block was placed (ms)
//   +48 BLOCK_REASON_FIELD      4 x u32  per status: status << 16 | min(count, 65535)
// Linear probing from a seeded hash of the address over BLOCK_PROBE_LIMIT slots; a slot
// whose block ended more than BLOCK_RECLAIM_GRACE_MS ago may go to another address.

/** Start of the block-list region. */
export const BLOCK_REGION_OFFSET = COUNTER_TABLE_OFFSET + COUNTER_TABLE_BYTES
/** Region header word: the writers' lock (u64). */
export const BLOCK_LOCK_FIELD = 0
/** Region header word: blocks placed (u32). */
export const BLOCK_PLACED_FIELD = 8
/** Region header word: blocks refused for want of a slot (u32). */
export const BLOCK_FULL_FIELD = 12
/** Bytes per block entry: a cache line. */
export const BLOCK_ENTRY_BYTES = 64
/** Number of block entries (a power of two). */
export const BLOCK_ENTRIES = 1 << 16
/** Start of the entries: the region's second page. */
export const BLOCK_TABLE_OFFSET = BLOCK_REGION_OFFSET + PAGE_BYTES
/** Bytes of the region: the header page and the entries. */
export const BLOCK_REGION_BYTES = PAGE_BYTES + BLOCK_ENTRIES * BLOCK_ENTRY_BYTES
/** Entry field: u32 seqlock word. */
export const BLOCK_SEQ_FIELD = 0
/** Entry field: u32 address family (4, 6; 0 never used). */
export const BLOCK_FAMILY_FIELD = 4
/** Entry field: 4 x u32 address words. */
export const BLOCK_IP_FIELD = 8
/** Entry field: u32 epoch. */
export const BLOCK_EPOCH_FIELD = 24
/** Entry field: u32 bad responses at the block. */
export const BLOCK_COUNT_FIELD = 28
/** Entry field: u64 blocked until (ms). */
export const BLOCK_UNTIL_FIELD = 32
/** Entry field: u64 blocked since (ms). */
export const BLOCK_SINCE_FIELD = 40
/** Entry field: 4 x u32 reason words (status << 16 | count). */
export const BLOCK_REASON_FIELD = 48
/** Reason words per entry. */
export const BLOCK_REASONS = 4
/** Most slots an address's probe sequence visits. */
export const BLOCK_PROBE_LIMIT = 64
/** A slot whose block ended this long ago (ms) may be given to another address. */
export const BLOCK_RECLAIM_GRACE_MS = 1000
/** A writer's lock older than this (ms) is taken over: its holder died mid-write. */
export const BLOCK_LOCK_STALE_MS = 1000

/* ---------------- the whole memory ---------------- */

/** Bytes of the whole memory: the end of the last region. */
export const MEMORY_BYTES = BLOCK_REGION_OFFSET + BLOCK_REGION_BYTES
/** Pages of the whole memory; asconfig.json's initialMemory and maximumMemory must equal it. */
export const MEMORY_PAGES = MEMORY_BYTES / PAGE_BYTES
