import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Value } from '@sinclair/typebox/value'
import type { FastifyInstance } from 'fastify'

/**
 * Validates every route's TypeBox schemas with TypeBox itself. Bodies are taken as sent: a number
 * where a string is expected, `"7"` where an integer is, `null` or a string where an object is, are
 * 400s (Fastify's default Ajv would coerce the first two). The query string, path parameters and
 * headers are text on the wire, so they are converted (`?age=7` is the integer 7) and given their
 * defaults. The 400 names each field and what was expected: `body/age Expected integer`.
 */
export function validateWithTypeBox (app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const checker = TypeCompiler.Compile(schema as TSchema)
    const convert = httpPart !== 'body'
    return (input: unknown) => {
      const value = convert ? Value.Convert(schema as TSchema, Value.Default(schema as TSchema, Value.Clone(input))) : input
      if (checker.Check(value)) return { value }
      const problems = new Map<string, string>()
      for (const error of checker.Errors(value)) if (!problems.has(error.path)) problems.set(error.path, error.message)
      const message = [...problems].slice(0, 3).map(([path, problem]) => `${httpPart ?? 'input'}${path} ${problem}`).join('; ')
      return { error: new Error(message) }
    }
  })
}
