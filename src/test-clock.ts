// For tests only: TOLLGATE_TEST_CLOCK_OFFSET_MS=<ms> shifts Date.now() in this process (all
// of its threads import this), to fake an instance whose clock is off. Cluster strict mode
// must not care (it counts in Redis time); nothing else should be run this way.
const offset = Number(process.env.TOLLGATE_TEST_CLOCK_OFFSET_MS ?? '0')
if (Number.isFinite(offset) && offset !== 0) {
  const real = Date.now
  Date.now = () => real() + offset
}
export {}
