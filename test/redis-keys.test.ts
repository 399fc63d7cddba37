import t from 'tap'
import { hashTagOf, keyPrefixOf, prefixPattern } from '../lib/stores/redis-keys.js'

t.test('the slot of a key is hashed from its first non-empty {...}, as Redis does', async (t) => {
  t.equal(hashTagOf('rc:{0a}:x'), '0a')
  t.equal(hashTagOf('{app}:rc:{0a}:x'), 'app', 'a keyPrefix with a hash tag moves every key to its slot')
  t.equal(hashTagOf('rc:x'), 'rc:x')
  t.equal(hashTagOf('a{}b{c}'), 'a{}b{c}', 'an empty tag: the whole key')
  t.equal(hashTagOf('a{b'), 'a{b')
})

t.test('a SCAN pattern matches its prefix literally', async (t) => {
  t.equal(prefixPattern('rc:'), 'rc:*')
  t.equal(prefixPattern('{a*}[b]?\\:rc:'), '{a\\*}\\[b\\]\\?\\\\:rc:*')
})

t.test('keyPrefix is read from the client, a Cluster\'s redisOptions, or a Buffer', async (t) => {
  t.equal(keyPrefixOf({}), '')
  t.equal(keyPrefixOf({ options: { keyPrefix: 'p:' } }), 'p:')
  t.equal(keyPrefixOf({ options: { redisOptions: { keyPrefix: 'q:' } } }), 'q:')
  t.equal(keyPrefixOf({ options: { redisOptions: { keyPrefix: 'q:' } } }, false), '', 'a node client adds only its own')
  t.equal(keyPrefixOf({ options: { keyPrefix: Buffer.from('b:') } }), 'b:')
})
