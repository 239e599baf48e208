// What a bench subject is: a named thing that starts, answers requests, and stops. Every
// subject file (bench/*-subjects.ts) builds these; bench/subjects.ts lists the files.

export interface SubjectContext {
  /** Base URL of the shared upstream, e.g. http://127.0.0.1:41234 */
  upstreamUrl: string
  /** How the shared upstream was started. */
  upstreamCommandLine: string
  /** PID of the shared upstream (for its CPU time when it is itself the subject). */
  upstreamPid?: number
  /** The repository root (holds bin/ and dist/). */
  root: string
}

/**
 * A request the subject's policy must refuse, sent once before and once after the load:
 * the proof that the policy ran (e.g. no token -> 401, a client address outside the
 * allow list -> 403, an invalid body -> 400).
 */
export interface ControlRequest {
  /** What it shows, for the report ("no token"). */
  what: string
  status: number
  headers?: Record<string, string>
  method?: string
  body?: string
  /** Local address to send from (another loopback address, 127.0.0.2 ...). */
  localAddress?: string
}

export interface RunningSubject {
  url: string
  /** Headers every request to this subject carries (a credential). */
  headers?: Record<string, string>
  /** Method and body of every request, when not a plain GET (the validator's JSON POST). */
  method?: string
  body?: string
  /** The process serving the requests, for its CPU time per request and peak RSS. */
  pid?: number
  commandLine: string
  /** Requests the policy must refuse, with the status it must refuse them with. */
  controls?: ControlRequest[]
  /** Response headers a good answer must carry (lower case): proof a header plugin ran. */
  expectHeaders?: string[]
  /** False once the subject's process has died. */
  alive(): boolean
  stop(): Promise<void>
}

export interface Subject {
  name: string
  description: string
  /** Part of `npm run bench` with no --scenario. */
  default?: boolean
  /** Worker threads (or processes) it serves with, when more than one: the report warns
   *  when the machine has fewer cores. */
  workers?: number
  start(ctx: SubjectContext): Promise<RunningSubject>
}

export interface SubjectGroup {
  /** Short name, usable with --scenario to run the whole group. */
  name: string
  description: string
  subjects: readonly Subject[]
}

/** Thrown by start() when a subject cannot run on this machine (a peer not installed): the
 *  runner reports it as skipped, with the message, and does not fail the run for it. */
export class SkipSubject extends Error {}
