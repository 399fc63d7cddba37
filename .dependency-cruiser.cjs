// The import directions of lib/ (README "Development"): `npm run deps`, part of `npm test`.
// Type-only imports count: a rule module that imports a Fastify type knows Fastify.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: a type two modules share belongs in the lower one.',
      from: {},
      to: { circular: true }
    },
    {
      name: 'rules-are-plain-http',
      severity: 'error',
      comment: 'lib/rules/ holds the HTTP rules (RFC 9110, 9111): pure functions over headers and entries, knowing nothing of Fastify, stores, options or the request path.',
      from: { path: '^lib/rules/' },
      to: { path: ['^lib/(http|coalescing|client|stores|observability)/', '^lib/(options|index)\\.ts$', 'node_modules/fastify/', 'node_modules/fastify-plugin/'] }
    },
    {
      name: 'client-not-into-http',
      severity: 'error',
      comment: 'app.cache (lib/client/) uses stores, coalescing and rules, never the internals of the Fastify request path.',
      from: { path: '^lib/client/' },
      to: { path: '^lib/http/' }
    },
    {
      name: 'coalescing-below-callers',
      severity: 'error',
      comment: 'Coalescing serves both the request path and app.cache: it imports neither.',
      from: { path: '^lib/coalescing/' },
      to: { path: '^lib/(http|client)/' }
    },
    {
      name: 'http-not-into-client',
      severity: 'error',
      from: { path: '^lib/http/' },
      to: { path: '^lib/client/' }
    },
    {
      name: 'stores-at-the-bottom',
      severity: 'error',
      comment: 'Stores know entries, keys and their own kinds; nothing of HTTP, app.cache or coalescing.',
      from: { path: '^lib/stores/' },
      to: { path: '^lib/(http|coalescing|client|rules)/' }
    },
    {
      name: 'observability-not-into-callers',
      severity: 'error',
      from: { path: '^lib/observability/' },
      to: { path: '^lib/(client|coalescing)/' }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' }
  }
}
