// The folder graph of src/ is the design (README, "How a request flows"); `npm run lint:deps`
// (part of `npm test`) keeps it so. Lower layers never import higher ones:
//
//   config/  log.ts  pki/         leaves: import nothing of ours (config/ only itself)
//   http/  oci/                   generic HTTP plumbing; OCI spec nouns (oci/ may use http/)
//   identity/  policy/            who is asking; what they may do (policy/ may use identity/)
//   limits/                       one Limiter over rate-limiter-flexible (config/, http/, oci/, identity/, log.ts only)
//   upstream/                     the proxy's side towards its registries: credentials, token dance,
//                                 failure classification, readiness probe (http/, oci/, config/, log.ts only)
//   trust/                        signature discovery and verification (cosign, sigstore bundles, offline):
//                                 upstream/, http/, oci/, config/ and log.ts only
//   audit/                        typed audit events and their sinks (stdout, file, webhook): http/, oci/,
//                                 config/ and log.ts only; token/, proxy/ and server/ hand it their events
//   tracing/                      OpenTelemetry spans (the SDK loaded only when configured): http/, config/
//                                 and log.ts only; token/, proxy/ and server/ open spans through its types
//   token/  proxy/                the two paths: /token and /v2/ (proxy/ sees only token/types.ts)
//   server/                       composition root: runtime wiring, dispatch, listen, health
//                                 (proxy/ and server/ alone import trust/; they and trust/ import upstream/)
//   cli/  clients/  dev/          entry points and client-side tools
//
// Each rule below names what one layer may not import; together with no-circular they keep
// the graph acyclic. A test file or a bench may import anything in src/, never the reverse.

/** Folders above each layer, as a path pattern. */
const above = (...folders) => `^src/(${folders.join('|')})/`;

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No module may reach itself through its imports.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'Every import resolves: an unresolved one would be invisible to the layer rules.',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'src-not-to-tests',
      severity: 'error',
      comment: 'Shipped code never imports tests, benches or scripts.',
      from: { path: '^src/' },
      to: { path: '^(test|bench|scripts)/' },
    },
    {
      name: 'config-is-a-leaf',
      severity: 'error',
      comment: 'config/ imports nothing of ours outside config/: every other layer may read it.',
      from: { path: '^src/config/' },
      to: { path: '^src/', pathNot: '^src/config/' },
    },
    {
      name: 'log-is-a-leaf',
      severity: 'error',
      comment: 'log.ts imports nothing of ours.',
      from: { path: '^src/log\\.ts$' },
      to: { path: '^src/' },
    },
    {
      name: 'pki-is-a-leaf',
      severity: 'error',
      comment: 'pki/ (certificates for signing keys) imports nothing of ours outside pki/.',
      from: { path: '^src/pki/' },
      to: { path: '^src/', pathNot: '^src/pki/' },
    },
    {
      name: 'http-is-generic',
      severity: 'error',
      comment:
        'http/ is generic plumbing (client IP, rate limit, metrics, JSON writer): it may read config/, nothing above.',
      from: { path: '^src/http/' },
      to: { path: above('oci', 'identity', 'policy', 'token', 'proxy', 'server', 'cli', 'clients', 'dev') },
    },
    {
      name: 'oci-is-the-spec',
      severity: 'error',
      comment:
        'oci/ holds the distribution spec nouns: it may use http/ and config/, nothing that knows identities or policies.',
      from: { path: '^src/oci/' },
      to: { path: above('identity', 'policy', 'token', 'proxy', 'server', 'cli', 'clients', 'dev') },
    },
    {
      name: 'identity-below-policy',
      severity: 'error',
      comment: 'identity/ answers "who is asking": it knows nothing of policies, tokens, paths or wiring.',
      from: { path: '^src/identity/' },
      to: { path: above('policy', 'token', 'proxy', 'server', 'cli', 'clients', 'dev') },
    },
    {
      name: 'policy-below-paths',
      severity: 'error',
      comment: 'policy/ answers "what may they do": it may use identity/ and oci/, not the paths that ask it.',
      from: { path: '^src/policy/' },
      to: { path: above('token', 'proxy', 'server', 'cli', 'clients', 'dev') },
    },
    {
      name: 'upstream-below-paths',
      severity: 'error',
      comment:
        'upstream/ (credentials towards the registries, the token dance, the probe) uses http/, oci/, config/ and log.ts only.',
      from: { path: '^src/upstream/' },
      to: { path: '^src/', pathNot: '^src/(upstream|http|oci|config)/|^src/log\\.ts$' },
    },
    {
      name: 'limits-below-paths',
      severity: 'error',
      comment:
        'limits/ (one Limiter over memory, cluster IPC or Redis) uses config/, http/, oci/, identity/ and log.ts; a key expression is compiled in policy/ and passed in.',
      from: { path: '^src/limits/' },
      to: { path: '^src/', pathNot: '^src/(limits|http|oci|config|identity)/|^src/log\\.ts$' },
    },
    {
      name: 'upstream-for-proxy-and-server',
      severity: 'error',
      comment:
        'Only the /v2/ path (proxy/), signature discovery (trust/) and the composition root (server/) import upstream/.',
      from: { path: '^src/', pathNot: '^src/(upstream|trust|proxy|server)/' },
      to: { path: '^src/upstream/' },
    },
    {
      name: 'trust-below-paths',
      severity: 'error',
      comment:
        'trust/ (finding and verifying signatures) reads through upstream/ and uses http/, oci/, config/ and log.ts only.',
      from: { path: '^src/trust/' },
      to: { path: '^src/', pathNot: '^src/(trust|upstream|http|oci|config)/|^src/log\\.ts$' },
    },
    {
      name: 'trust-for-proxy-and-server',
      severity: 'error',
      comment: 'Only the /v2/ path (its signature guard) and the composition root (server/) import trust/.',
      from: { path: '^src/', pathNot: '^src/(trust|proxy|server)/' },
      to: { path: '^src/trust/' },
    },
    {
      name: 'audit-below-paths',
      severity: 'error',
      comment: 'audit/ (typed events, sinks behind bounded queues) uses http/, oci/, config/ and log.ts only.',
      from: { path: '^src/audit/' },
      to: { path: '^src/', pathNot: '^src/(audit|http|oci|config)/|^src/log\\.ts$' },
    },
    {
      name: 'audit-for-the-paths',
      severity: 'error',
      comment: 'Only the two paths (token/, proxy/) and the composition root (server/) hand events to audit/.',
      from: { path: '^src/', pathNot: '^src/(audit|token|proxy|server)/' },
      to: { path: '^src/audit/' },
    },
    {
      name: 'tracing-below-paths',
      severity: 'error',
      comment: 'tracing/ (OpenTelemetry spans and their export) uses http/, config/ and log.ts only.',
      from: { path: '^src/tracing/' },
      to: { path: '^src/', pathNot: '^src/(tracing|http|config)/|^src/log\\.ts$' },
    },
    {
      name: 'tracing-for-the-paths',
      severity: 'error',
      comment: 'Only the two paths (token/, proxy/) and the composition root (server/) open spans.',
      from: { path: '^src/', pathNot: '^src/(tracing|token|proxy|server)/' },
      to: { path: '^src/tracing/' },
    },
    {
      name: 'token-path-alone',
      severity: 'error',
      comment:
        'token/ (the /token path, and the registry-token format it issues and verifies) never imports the /v2/ path or the wiring.',
      from: { path: '^src/token/' },
      to: { path: above('proxy', 'server', 'cli', 'clients', 'dev') },
    },
    {
      name: 'proxy-path-below-wiring',
      severity: 'error',
      comment: 'proxy/ (the /v2/ path) never imports the wiring or the entry points.',
      from: { path: '^src/proxy/' },
      to: { path: above('server', 'cli', 'clients', 'dev') },
    },
    {
      name: 'proxy-sees-only-the-token-contract',
      severity: 'error',
      comment:
        'proxy/ uses the registry-token verifier through token/types.ts only; server/runtime.ts injects the implementation.',
      from: { path: '^src/proxy/' },
      to: { path: '^src/token/', pathNot: '^src/token/types\\.ts$' },
    },
    {
      name: 'server-is-the-root',
      severity: 'error',
      comment: 'server/ is the composition root of the proxy: only the entry points above it may import it.',
      from: { path: '^src/server/' },
      to: { path: above('cli', 'clients', 'dev') },
    },
    {
      name: 'clients-are-client-side',
      severity: 'error',
      comment: 'clients/ (credential helpers, login, controller) run without the proxy: no server-side code, no CLI.',
      from: { path: '^src/clients/' },
      to: { path: above('identity', 'policy', 'token', 'proxy', 'server', 'cli', 'dev') },
    },
    {
      name: 'dev-below-cli',
      severity: 'error',
      comment: 'dev/ (the --dev set-up) is used by the CLI, never the reverse; it does not start the proxy itself.',
      from: { path: '^src/dev/' },
      to: { path: above('server', 'cli', 'clients') },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports are edges of the design too.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
