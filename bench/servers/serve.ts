import type { FastifyInstance } from 'fastify'

/** Listens on a free loopback port and tells the runner which, over the fork's IPC channel. */
export async function serve (app: FastifyInstance): Promise<void> {
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  process.send?.({ address })
  process.on('disconnect', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
