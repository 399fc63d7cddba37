// `npm run example <name>`: starts examples/<name>/server.ts. Only names of folders that hold a
// server.ts are accepted, so the argument never becomes a path of its own.
import { existsSync, readdirSync } from 'node:fs'

const folder = new URL('.', import.meta.url)
const examples = readdirSync(folder, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(new URL(`${entry.name}/server.ts`, folder)))
  .map((entry) => entry.name)
  .sort()

const name = process.argv[2]
if (name === undefined || !examples.includes(name)) {
  console.error(`${name === undefined ? 'Name an example' : `No example named "${name}"`}. Examples:\n${examples.map((example) => `  npm run example ${example}`).join('\n')}`)
  process.exit(1)
}
await import(new URL(`${name}/server.ts`, folder).href)
