import t from 'tap'
import { tenantSegment } from '../lib/key.js'
import { ValueKeys } from '../lib/client/value-keys.js'
import { valueKey } from '../lib/client/values.js'

// The memo of app.cache's store keys: the same answer as valueKey, whatever it remembers or forgets.

t.test('store keys are those of valueKey, past the memo bound and for keys too long to remember', async (t) => {
  const keys = new ValueKeys('ns')
  const long = 'k'.repeat(300)
  const cases: Array<[string, string | number | undefined]> = [['a:b', undefined], ['a:b', 'acme'], ['a:b', 42], ['a:b', '42'], [long, undefined], [long, 'x'.repeat(300)]]
  for (let round = 0; round < 2; round++) {
    for (const [key, tenant] of cases) t.equal(keys.of(key, tenant), valueKey('ns', tenantSegment(tenant), key))
  }
  let wrong = 0
  // Past 10,000 pairs the memo is emptied and filled again: every answer stays right.
  for (let i = 0; i < 10_050; i++) {
    if (keys.of(`item:${i}`, undefined) !== valueKey('ns', '-', `item:${i}`)) wrong++
    if (keys.of('item', i) !== valueKey('ns', tenantSegment(i), 'item')) wrong++
  }
  for (let i = 0; i < 10_050; i += 1000) if (keys.of('item', i) !== valueKey('ns', tenantSegment(i), 'item')) wrong++
  t.equal(wrong, 0)
  t.not(keys.of('a', 'acme'), keys.of('a', 'other'), 'tenants never share a store key')
  t.not(keys.of('a', undefined), keys.of('a', '-'), 'no tenant is not the tenant "-"')
})
