// How every example starts: HOST and PORT from the environment, one clear line when the port is
// taken, the "Try:" lines printed after the listen line, and a clean close on SIGINT and SIGTERM.
import type { FastifyInstance } from 'fastify'

export interface Listening {
  /** `http://host:port` as a client reaches it. */
  address: string
  host: string
  port: number
}

/** HOST (default 127.0.0.1) and PORT (default 3000) from the environment. */
export function listenOptions (): { host: string, port: number } {
  const port = Number(process.env.PORT ?? 3000)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be a port number (0 to 65535), not "${process.env.PORT ?? ''}"`)
    process.exit(1)
  }
  return { host: process.env.HOST ?? '127.0.0.1', port }
}

/**
 * Listens, then prints `tryLines` (commands for the reader, `{address}` replaced by the address);
 * exits with one line instead of a stack trace when the port is taken.
 */
export async function listen (app: FastifyInstance, tryLines: readonly string[] = []): Promise<Listening> {
  const { host, port } = listenOptions()
  try {
    await app.listen({ host, port })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      console.error(`Cannot listen on ${host}:${port} (${code === 'EADDRINUSE' ? 'the port is taken' : 'not allowed'}): set PORT to another port.`)
      await app.close()
      process.exit(1)
    }
    throw error
  }
  const bound = app.server.address()
  const actualPort = typeof bound === 'object' && bound !== null ? bound.port : port
  const address = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
  }
  if (tryLines.length > 0) console.log(`\nTry:\n${tryLines.map((line) => '  ' + line.replaceAll('{address}', address)).join('\n')}`)
  return { address, host, port: actualPort }
}
