// Scenario 5: tollgate with no plugins on 1, 2 and 4 worker threads. With fewer cores than
// workers (plus the acceptor, the load generator and the upstream, which share them), the
// extra threads only take turns: the report says so beside the figure.
import type { Subject, SubjectGroup } from './lib/subject.js'
import { tollgateSubject } from './lib/tollgate.js'

const workerSubject = (n: number): Subject => ({
  name: `tollgate-w${n}`,
  description: `tollgate, ${n} worker${n === 1 ? '' : 's'}, no plugins`,
  workers: n,
  start: async (ctx) => await tollgateSubject(ctx, `tollgate-w${n}`, [], { workers: n })
})

export const workerGroup: SubjectGroup = { name: 'workers', description: 'tollgate with 1, 2, 4 workers', subjects: [1, 2, 4].map(workerSubject) }
