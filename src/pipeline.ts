import type { PluginHooks, RequestContext, ResponseInfo } from './types.js'

interface Named<F> { name: string, fn: F }

type RequestHook = NonNullable<PluginHooks['onRequest']>
type ResponseHook = NonNullable<PluginHooks['onResponse']>
type LogHook = NonNullable<PluginHooks['onLog']>

/**
 * A route's hooks, composed once per generation (undici Dispatcher.compose style): plugins
 * with no hook for a stage are skipped at compose time, so the request path walks only
 * arrays of functions.
 */
export interface Pipeline {
  readonly onRequest: ReadonlyArray<Named<RequestHook>>
  readonly onResponse: ReadonlyArray<Named<ResponseHook>>
  readonly onLog: ReadonlyArray<Named<LogHook>>
}

/** `instances` must be in run order (phase, then config order). */
export function composePipeline (instances: ReadonlyArray<{ name: string, hooks: PluginHooks }>): Pipeline {
  const onRequest: Array<Named<RequestHook>> = []
  const onResponse: Array<Named<ResponseHook>> = []
  const onLog: Array<Named<LogHook>> = []
  for (const { name, hooks } of instances) {
    if (hooks.onRequest !== undefined) onRequest.push({ name, fn: hooks.onRequest.bind(hooks) })
    if (hooks.onResponse !== undefined) onResponse.push({ name, fn: hooks.onResponse.bind(hooks) })
    if (hooks.onLog !== undefined) onLog.push({ name, fn: hooks.onLog.bind(hooks) })
  }
  return Object.freeze({ onRequest, onResponse, onLog })
}

interface Tracked extends RequestContext { current: string, hookTimes?: Array<string | number> | undefined }

/**
 * Run the request hooks from `i` on. Each hook is called synchronously; the runner awaits
 * only when a hook returns a thenable (fastify hookRunner style), so an all-sync pipeline
 * never touches the microtask queue. It stops as soon as a hook has replied. A throw or a
 * rejection propagates to the caller, which answers 500.
 */
export function runRequestHooks (ctx: Tracked, hooks: Pipeline['onRequest'], i = 0): void | Promise<void> {
  // Timings for an exported span (observe.ts): one array check per hook when tracing is off.
  const times = ctx.hookTimes
  for (; i < hooks.length; i++) {
    const h = hooks[i] as Named<RequestHook>
    ctx.current = h.name
    const t0 = times === undefined ? 0 : performance.now()
    const r = h.fn(ctx)
    if (ctx.replied) {
      times?.push(h.name, t0, performance.now())
      return
    }
    if (r !== undefined && typeof (r as Promise<void>).then === 'function') {
      const next = i + 1
      return (r as Promise<void>).then(() => {
        times?.push(h.name, t0, performance.now())
        return ctx.replied ? undefined : runRequestHooks(ctx, hooks, next)
      })
    }
    times?.push(h.name, t0, performance.now())
  }
  ctx.current = 'gateway'
}

/** Response hooks are sync: they edit status and headers before the client sees them. */
export function runResponseHooks (ctx: Tracked, hooks: Pipeline['onResponse'], res: ResponseInfo): void {
  for (let i = 0; i < hooks.length; i++) {
    const h = hooks[i] as Named<ResponseHook>
    ctx.current = h.name
    h.fn(ctx, res)
  }
  ctx.current = 'gateway'
}

/** Log hooks run after the response; one failing must not stop the others. */
export function runLogHooks (ctx: RequestContext, hooks: Pipeline['onLog'], onError: (name: string, err: unknown) => void): void {
  for (let i = 0; i < hooks.length; i++) {
    const h = hooks[i] as Named<LogHook>
    try {
      h.fn(ctx)
    } catch (err) {
      onError(h.name, err)
    }
  }
}
