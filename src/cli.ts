import { parseArgs } from 'node:util'
import { createSharedState, prepareConfig } from './acceptor.js'
import { serve } from './serve.js'
import { configFromFlags, keyDigest, readConfigFile } from './config.js'
import type { RawConfig } from './config.js'
import { startDemo } from './demo.js'
import { codes, GatewayError } from './errors.js'
import { createLogger } from './log.js'
import { builtinPlugins } from '../plugins/index.js'
import { importPlugin, resolvePluginModule } from './plugin-loader.js'
import { VERSION } from './version.js'
import { AdminClient, DEFAULT_ADMIN_URL, formatApplied, formatStatus } from './admin/client.js'

const HELP = `tollgate ${VERSION}: an API gateway for security policies

Usage:
  tollgate                                   start the embedded demo (upstream + sample policies)
  tollgate --upstream URL [options]          proxy everything to one upstream
  tollgate --config gateway.yaml [options]   run a config file (YAML or JSON)
  tollgate validate FILE                     check a config file; exit 0 if good, 2 if not
  tollgate reload [--config FILE]            running gateway: apply FILE, or re-read its own file
  tollgate status                            running gateway: version, generation, workers, uptime
  tollgate push FILE --admin URL             apply FILE on one running gateway; in cluster mode it
                                             is then stored in Redis and applied by every instance
  tollgate hash-key < keyfile                the sha256: digest of an API key read from stdin,
                                             for consumers[].credentials.keys[].digest

Options:
  -c, --config FILE        config file (YAML or JSON)
  -u, --upstream URL       upstream origin, e.g. http://127.0.0.1:3000 (no config file)
  -p, --plugins a,b        built-in plugins to run on every request (with --upstream)
      --plugin PATH        a plugin module of your own (repeatable; with --upstream)
      --host HOST          listen address (default 127.0.0.1)
      --port N             listen port (default 8080; 0 picks a free one)
  -w, --workers N          worker threads (default: available parallelism)
      --log-level LEVEL    fatal|error|warn|info|debug|trace|silent (default info)
      --admin URL          admin API of the running gateway (reload, status, push; default ${DEFAULT_ADMIN_URL})
      --token T            admin API token (reload, status, push; default: env TOLLGATE_ADMIN_TOKEN)
  -h, --help               this text
  -v, --version            the version

Built-in plugins: ${Object.keys(builtinPlugins).join(', ')}
Exit codes: 0 ok, 2 bad usage, bad config or failed start.`

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  upstream: { type: 'string', short: 'u' },
  plugins: { type: 'string', short: 'p' },
  plugin: { type: 'string', multiple: true },
  host: { type: 'string' },
  port: { type: 'string' },
  workers: { type: 'string', short: 'w' },
  'log-level': { type: 'string' },
  admin: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' }
} as const

type Flags = ReturnType<typeof parseArgs<{ options: typeof OPTIONS, allowPositionals: true }>>['values']

function intFlag (name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined
  if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw codes.GW_ERR_CLI_USAGE(`--${name} must be an integer from ${min} to ${max}, got '${value}'`)
  }
  return Number(value)
}

/** Print a failure as one clear line (plus one line per config problem), no stack trace. */
function report (err: unknown): void {
  if (err instanceof GatewayError) {
    process.stderr.write(`tollgate: ${err.message} [${err.code}]\n`)
    for (const d of err.details) process.stderr.write(`${d}\n`)
  } else {
    process.stderr.write(`tollgate: ${(err as Error)?.message ?? String(err)}\n`)
  }
}

async function rawFromFlags (flags: Flags): Promise<RawConfig> {
  const port = intFlag('port', flags.port, 0, 65535)
  const workers = intFlag('workers', flags.workers, 1, 256)
  if (flags.config !== undefined) {
    if (flags.upstream !== undefined || flags.plugins !== undefined || flags.plugin !== undefined) {
      throw codes.GW_ERR_CLI_USAGE('--upstream, --plugins and --plugin go without --config; put routes and plugins in the file')
    }
    const raw = await readConfigFile(flags.config)
    // Flags given beside a file override its listen address, workers and log level.
    const v = (raw.value ?? {}) as Record<string, unknown>
    if (typeof v === 'object' && !Array.isArray(v)) {
      if (flags.host !== undefined || port !== undefined) v.listen = { ...(v.listen as object ?? {}), ...(flags.host !== undefined ? { host: flags.host } : {}), ...(port !== undefined ? { port } : {}) }
      if (workers !== undefined) v.workers = workers
      if (flags['log-level'] !== undefined) v.logLevel = flags['log-level']
    }
    return raw
  }
  const upstream = flags.upstream as string
  if (!/^https?:\/\/[^/]+/i.test(upstream)) throw codes.GW_ERR_CLI_USAGE(`--upstream must be an http:// or https:// URL, got '${upstream}'`)
  const plugins: Array<{ name: string, module?: string }> = []
  for (const name of (flags.plugins ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')) plugins.push({ name })
  for (const path of flags.plugin ?? []) {
    // A user plugin's name comes from its module.
    const url = resolvePluginModule({ name: path, module: path }, process.cwd())
    const plugin = await importPlugin(path, url)
    plugins.push({ name: plugin.name, module: url })
  }
  return configFromFlags({ upstream, host: flags.host, port, workers, logLevel: flags['log-level'], plugins })
}

async function validateCommand (file: string | undefined): Promise<number> {
  if (file === undefined) throw codes.GW_ERR_CLI_USAGE('validate needs a file: tollgate validate gateway.yaml')
  const log = createLogger('silent')
  const raw = await readConfigFile(file)
  // The same steps as a start, on a memory of its own: CIDR lists are compiled for real.
  const prepared = await prepareConfig(raw, log, await createSharedState())
  const plugins = new Set([...prepared.config.plugins, ...prepared.config.routes.flatMap((r) => r.plugins)].map((p) => p.name))
  process.stdout.write(`${file}: ok (${prepared.config.routes.length} route(s), plugins: ${[...plugins].join(', ') || 'none'})\n`)
  return 0
}

/** Admin API commands take only --admin and --token (and reload --config): nothing that starts a gateway. */
function adminClient (flags: Flags, command: string): AdminClient {
  for (const f of ['upstream', 'plugins', 'plugin', 'host', 'port', 'workers'] as const) {
    if (flags[f] !== undefined) throw codes.GW_ERR_CLI_USAGE(`--${f} does not go with ${command}`)
  }
  return new AdminClient(flags.admin ?? DEFAULT_ADMIN_URL, flags.token ?? process.env.TOLLGATE_ADMIN_TOKEN)
}

/** `tollgate reload`: PUT a file's config (based on the running version), or have the gateway re-read its own. */
async function reloadCommand (flags: Flags): Promise<number> {
  const client = adminClient(flags, 'reload')
  if (flags.config === undefined) {
    process.stdout.write(formatApplied(await client.reloadFromFile()))
  } else {
    const raw = await readConfigFile(flags.config)
    process.stdout.write(formatApplied(await client.applyConfig(raw.value)))
  }
  return 0
}

/**
 * `tollgate push FILE`: for CI jobs. It goes through one instance's admin API, not straight
 * to Redis, so the policy is checked whole (schema, plugins, a dry run) before anything is
 * stored; that instance then stores it in Redis and the fleet applies it (cluster mode).
 */
async function pushCommand (flags: Flags, positionals: string[]): Promise<number> {
  if (flags.config !== undefined) throw codes.GW_ERR_CLI_USAGE('push takes the file as an argument: tollgate push gateway.yaml --admin URL')
  const file = positionals[1]
  if (file === undefined || positionals.length > 2) throw codes.GW_ERR_CLI_USAGE('push needs exactly one config file: tollgate push gateway.yaml --admin URL')
  const client = adminClient(flags, 'push')
  const raw = await readConfigFile(file)
  process.stdout.write(formatApplied(await client.applyConfig(raw.value)))
  return 0
}

/** `tollgate status`: a short summary of the running gateway. */
async function statusCommand (flags: Flags): Promise<number> {
  if (flags.config !== undefined) throw codes.GW_ERR_CLI_USAGE('--config does not go with status')
  process.stdout.write(formatStatus(await adminClient(flags, 'status').status()))
  return 0
}

/** `tollgate hash-key`: the key comes on stdin, never as an argument (shell history, ps). */
async function hashKeyCommand (positionals: string[]): Promise<number> {
  if (positionals.length > 1) throw codes.GW_ERR_CLI_USAGE('hash-key reads the key from stdin, not from an argument: tollgate hash-key < keyfile')
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  const key = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  if (key.length < 16) throw codes.GW_ERR_CLI_USAGE('hash-key: the key on stdin is shorter than 16 characters (consumers need longer keys)')
  process.stdout.write(keyDigest(key) + '\n')
  return 0
}

export async function main (argv: string[]): Promise<void> {
  let code = 0
  try {
    const { values: flags, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
    if (flags.help === true) {
      process.stdout.write(HELP + '\n')
    } else if (flags.version === true) {
      process.stdout.write(VERSION + '\n')
    } else if (positionals[0] === 'validate') {
      code = await validateCommand(positionals[1])
    } else if (positionals[0] === 'reload') {
      code = await reloadCommand(flags)
    } else if (positionals[0] === 'push') {
      code = await pushCommand(flags, positionals)
    } else if (positionals[0] === 'hash-key') {
      code = await hashKeyCommand(positionals)
    } else if (positionals[0] === 'status') {
      code = await statusCommand(flags)
    } else if (positionals.length > 0 && positionals[0] !== 'serve') {
      throw codes.GW_ERR_CLI_USAGE(`unknown command '${positionals[0] ?? ''}'; see tollgate --help`)
    } else {
      const level = flags['log-level'] ?? 'info'
      const log = createLogger(level, { role: 'acceptor' })
      if (flags.config === undefined && flags.upstream === undefined) {
        if (flags.plugins !== undefined || flags.plugin !== undefined) throw codes.GW_ERR_CLI_USAGE('--plugins needs --upstream (or use --config)')
        const demo = await startDemo({ host: flags.host, port: intFlag('port', flags.port, 0, 65535), workers: intFlag('workers', flags.workers, 1, 256), logLevel: level })
        try {
          code = await serve({ raw: demo.raw, log, banner: demo.banner })
        } finally {
          await demo.close()
        }
      } else {
        const raw = await rawFromFlags(flags)
        code = await serve({
          raw,
          log,
          file: flags.config,
          reread: flags.config === undefined ? undefined : async () => await rawFromFlags(flags)
        })
      }
    }
  } catch (err) {
    const e = err as { code?: string, message?: string }
    if (typeof e?.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`tollgate: ${e.message ?? ''}; see tollgate --help\n`)
    } else {
      report(err)
    }
    code = 2
  }
  process.exitCode = code
  // Threads, sockets and logs are closed and flushed by now; a stray timer in a user's
  // plugin must not keep a stopped gateway alive.
  setTimeout(() => process.exit(code), 50)
}
