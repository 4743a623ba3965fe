import { Environment } from '@marcbachmann/cel-js';

/**
 * The CEL environment every `when` is type-checked against (CONTRACT §3). `identity` and `request`
 * have declared fields so a typo like `identity.namespce` fails at start-up, not at request time.
 */
export function policyEnvironment(): Environment {
  return new Environment({ unlistedVariablesAreDyn: false })
    .registerVariable('claims', 'map<string, dyn>')
    .registerVariable({
      name: 'identity',
      schema: {
        issuerName: 'string',
        issuer: 'string',
        subject: 'string',
        preset: 'string',
        namespace: 'string',
        serviceAccount: 'string',
        podName: 'string',
      },
    })
    .registerVariable({
      name: 'request',
      schema: {
        type: 'string',
        repository: 'string',
        actions: 'list<string>',
        service: 'string',
        clientIP: 'string',
        upstream: 'string',
      },
    });
}

export interface CelContext {
  claims: Record<string, unknown>;
  identity: {
    issuerName: string;
    issuer: string;
    subject: string;
    preset: string;
    namespace: string;
    serviceAccount: string;
    podName: string;
  };
  request: { type: string; repository: string; actions: string[]; service: string; clientIP: string; upstream: string };
}

export type CompiledWhen = (ctx: CelContext) => unknown;
