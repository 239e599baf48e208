import t from 'tap'
import { isoNow } from '../../plugins/access-log/line.js'

t.test('isoNow is the ISO time of now, as pino writes it', async (t) => {
  for (let i = 0; i < 3; i++) {
    const before = Date.now()
    const iso = isoNow()
    const after = Date.now()
    const ms = Date.parse(iso)
    t.ok(ms >= before && ms <= after, `${iso} within [${before}, ${after}]`)
    t.match(iso, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
})
