// Issue 24, point 4: the tiered store's bus keeps each sender's last number to notice lost messages.
// Anyone who can publish on the channel can make up sender ids: the table of senders is bounded, and
// a sender it forgets is treated as one whose messages may have been lost (the local tier is emptied).
import { Redis } from 'ioredis'
import t from 'tap'
import { InvalidationBus, MAX_SENDERS, type BusClient, type Drop } from '../lib/stores/bus.js'
import { eventually } from './helpers/events.js'
import { startRedis } from './helpers/redis.js'

const server = await startRedis(t)
const url = `redis://${await server.getHost()}:${await server.getPort()}`

t.test('50,000 forged sender ids keep at most MAX_SENDERS in the table; a sender forgotten is a gap', async (t) => {
  const redis = new Redis(url)
  const raw = new Redis(url)
  t.teardown(() => { redis.disconnect(); raw.disconnect() })
  const dropped: Drop[] = []
  const distrusted: string[] = []
  const bus = new InvalidationBus(redis as unknown as BusClient, 'senders', { drop: (drop) => { dropped.push(drop) }, distrust: (why) => { distrusted.push(why) } })
  t.teardown(() => { bus.close() })
  await bus.start(5000)
  const send = async (sender: string, n: number, key: string): Promise<unknown> =>
    await raw.publish('senders:bus', JSON.stringify({ v: 1, s: sender, n, k: 'k', x: [key] }))
  const heard = async (key: string, ms = 30_000): Promise<boolean> =>
    await eventually(() => dropped.some((drop) => drop.kind === 'keys' && drop.keys.includes(key)), ms)

  await send('real', 1, 'before')
  t.ok(await heard('before'))
  t.equal(bus.senders, 1)
  await send('x'.repeat(1_000_000), 1, 'a long id')
  await send('real', 2, 'after the long id')
  t.ok(await heard('after the long id'))
  t.notOk(await heard('a long id', 0), 'a sender id of a megabyte is not read')
  t.equal(bus.unreadable, 1)
  t.equal(bus.senders, 1, 'nor kept')

  const flood = raw.pipeline()
  for (let i = 0; i < 50_000; i++) flood.publish('senders:bus', JSON.stringify({ v: 1, s: `forged-${i}`, n: 1, k: 'k', x: [] }))
  await flood.exec()
  await send('recent', 1, 'flooded')
  t.ok(await heard('flooded'), 'every message of the flood was received')
  t.equal(bus.senders, MAX_SENDERS, `at most ${MAX_SENDERS} senders kept, not 50,002`)
  t.same(distrusted, [], 'each forged sender sent its first message: no gap')

  await send('recent', 2, 'recent again')
  t.ok(await heard('recent again'))
  t.same(distrusted, [], 'a sender heard recently is remembered')
  await send('real', 3, 'after')
  t.ok(await heard('after'))
  t.same(distrusted, ['gap'], 'a sender forgotten under the flood is heard as new past its first message: the local tier is emptied')
})
