import t from 'tap'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import { createSharedMemory } from '../src/shared-memory.js'
import { nextIpRegion, readLiveIpRegion, switchIpRegion, writeIpTable } from '../src/ip/table-writer.js'

// A worker on the compiled code (dist/, built by `pretest`), as a gateway worker runs it.
// It pins a region the way a generation does (one Atomics.load of HDR_IP_LIVE), then
// answers lookups from that region until told to pin again.
const dist = (p: string): string => new URL(`../dist/src/${p}`, import.meta.url).href
const workerCode = `
const { parentPort, workerData } = require('node:worker_threads')
;(async () => {
  const { loadHotPath } = await import(${JSON.stringify(dist('shared-memory.js'))})
  const { readLiveIpRegion } = await import(${JSON.stringify(dist('ip/table-writer.js'))})
  const { createIpMatcher } = await import(${JSON.stringify(dist('ip/matcher.js'))})
  const { memory, gate } = workerData
  const hot = await loadHotPath(memory)
  let matcher
  parentPort.on('message', (msg) => {
    if (msg.type === 'pin') {
      matcher = createIpMatcher(hot, readLiveIpRegion(memory))
      parentPort.postMessage({ region: matcher.region })
    } else if (msg.type === 'ask') {
      parentPort.postMessage({ answers: msg.ips.map((ip) => matcher.contains(0, ip)) })
    } else if (msg.type === 'soak') {
      // Lookups in a loop, from the gate opening until the main thread closes it again.
      Atomics.wait(gate, 0, 0)
      let lookups = 0
      let wrong = 0
      while (Atomics.load(gate, 0) === 1) {
        for (let i = 0; i < msg.ips.length; i++) {
          if (matcher.contains(0, msg.ips[i]) !== msg.want[i]) wrong++
          lookups++
        }
      }
      parentPort.postMessage({ lookups, wrong })
    }
  })
  parentPort.postMessage({ ready: true })
})()
`

t.test('a worker pinned to a region keeps its answers while the other region is rewritten and switched', async t => {
  const memory = createSharedMemory()
  const gate = new Int32Array(new SharedArrayBuffer(4))
  // execArgv: [] keeps tap's TypeScript loader out of the worker: it runs compiled JS.
  const worker = new Worker(workerCode, { eval: true, workerData: { memory, gate }, execArgv: [] })
  t.teardown(() => worker.terminate())
  const ask = async (msg: object): Promise<any> => {
    worker.postMessage(msg)
    return (await once(worker, 'message'))[0]
  }
  t.same((await once(worker, 'message'))[0], { ready: true })

  const ips = ['10.1.2.3', '11.0.0.1', '2001:db8::1', '2001:db9::1', '::ffff:10.0.0.1', '::ffff:11.0.0.1']
  const first = nextIpRegion(memory)
  writeIpTable(memory, first, [['10.0.0.0/8', '2001:db8::/32']])
  switchIpRegion(memory, first)
  t.same(await ask({ type: 'pin' }), { region: first }, 'the worker pins the region the main thread switched to')
  const before = [true, false, true, false, true, false]
  t.same((await ask({ type: 'ask', ips })).answers, before, 'the worker reads the table the main thread wrote')

  // While the worker looks up in a loop, the main thread rewrites the other region five
  // times and switches to it: the pinned worker must never see a wrong answer.
  const second = nextIpRegion(memory)
  const soak = ask({ type: 'soak', ips, want: before })
  Atomics.store(gate, 0, 1)
  Atomics.notify(gate, 0)
  for (let round = 0; round < 5; round++) {
    writeIpTable(memory, second, [Array.from({ length: 20000 }, (_, i) => `11.${(i >> 8) & 255}.${i & 255}.0/24`).concat(['2001:db9::/32'])])
  }
  switchIpRegion(memory, second)
  await new Promise(resolve => setTimeout(resolve, 50))
  Atomics.store(gate, 0, 2)
  const { lookups, wrong } = await soak
  t.ok(lookups > 1000, `${lookups} lookups ran in the worker during the writes`)
  t.equal(wrong, 0, 'not one answer changed')
  t.equal(readLiveIpRegion(memory), second)

  t.same((await ask({ type: 'ask', ips })).answers, before, 'still pinned to the old region after the switch')
  t.same(await ask({ type: 'pin' }), { region: second }, 'pinning again takes the new live region')
  t.same((await ask({ type: 'ask', ips })).answers, [false, true, false, true, false, true], 'and answers from the new table')
})
