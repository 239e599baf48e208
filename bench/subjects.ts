// The registry of bench subjects: one line per subject file. A subject file
// (bench/<what>-subjects.ts) exports its subjects, either as a SubjectGroup
// (`export const fooGroup: SubjectGroup = { name, description, subjects }`) or as an array
// of Subject (`export const fooSubjects: readonly Subject[] = [...]`, grouped under the
// file's name). To add one, add its compiled path to SUBJECT_MODULES, in the order it should
// run and be reported. A listed file that is not in this build (a branch not merged yet) is
// skipped with a note in --list, so the list can name files that land later.
import { startServer } from './lib/children.js'
import { announcedPort } from './lib/ready.js'
import type { Subject, SubjectGroup } from './lib/subject.js'
import { fileURLToPath } from 'node:url'

export type { ControlRequest, RunningSubject, Subject, SubjectContext, SubjectGroup } from './lib/subject.js'

const SUBJECT_MODULES: readonly string[] = [
  './core-subjects.js',          // 1. upstream, bare-proxy, tollgate (no plugins)
  './plugin-subjects.js',        // 2. each built-in plugin alone, doing its real work
  './auth-subjects.js',          // 2. the authn plugins (key-auth, jwt-auth, introspection)
  './validate-subjects.js',      // 2. request-validator with a 1 KiB JSON order
  './policy-subjects.js',        // 3. full-policy
  './peer-subjects.js',          // 4. @fastify/http-proxy, fast-gateway, HAProxy
  './worker-subjects.js',        // 5. tollgate with 1, 2, 4 workers
  './tls-subjects.js',
  './upstream-subjects.js',
  './cache-subjects.js',
  './observability-subjects.js',
]

export interface LoadedGroups {
  groups: SubjectGroup[]
  /** Listed files that are not in this build. */
  missing: string[]
}

function isSubject (v: unknown): v is Subject {
  const s = v as Partial<Subject> | null
  return typeof s === 'object' && s !== null && typeof s.name === 'string' && typeof s.description === 'string' && typeof s.start === 'function'
}

function isGroup (v: unknown): v is SubjectGroup {
  const g = v as Partial<SubjectGroup> | null
  return typeof g === 'object' && g !== null && typeof g.name === 'string' && Array.isArray(g.subjects) && g.subjects.every(isSubject)
}

/** Import every listed subject file and collect its groups; names must be unique. */
export async function loadSubjectGroups (): Promise<LoadedGroups> {
  const groups: SubjectGroup[] = []
  const missing: string[] = []
  const seen = new Set<string>()
  for (const file of SUBJECT_MODULES) {
    const url = new URL(file, import.meta.url)
    let mod: Record<string, unknown>
    try {
      mod = await import(url.href) as Record<string, unknown>
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { url?: string }
      // Only the listed file itself being absent is skipped; a broken import inside it is an error.
      if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(fileURLToPath(url))) {
        missing.push(file)
        continue
      }
      throw err
    }
    const fileName = file.replace(/^\.\//, '').replace(/-subjects\.js$/, '').replace(/\.js$/, '')
    // The file's SubjectGroups; only where it exports none, its Subject arrays.
    const found: SubjectGroup[] = Object.values(mod).filter(isGroup)
    if (found.length === 0) {
      for (const value of Object.values(mod)) {
        if (Array.isArray(value) && value.length > 0 && value.every(isSubject)) {
          found.push({ name: fileName, description: `subjects of bench/${fileName}-subjects.ts`, subjects: value })
        }
      }
    }
    if (found.length === 0) throw new Error(`bench/${file}: exports no SubjectGroup and no Subject[]`)
    for (const g of found) {
      for (const s of g.subjects) {
        if (seen.has(s.name)) throw new Error(`bench subject "${s.name}" is defined twice (in ${file})`)
        seen.add(s.name)
      }
      groups.push(g)
    }
  }
  return { groups, missing }
}

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))

/** The shared upstream, started once per bench run. */
export function startUpstream (): ReturnType<typeof startServer> {
  return startServer({
    name: 'upstream',
    command: process.execPath,
    args: [here('./upstream.js'), '--host', '127.0.0.1', '--port', '0'],
    ready: announcedPort,
    startTimeoutMs: 10_000
  })
}
