import { describe, expect, it } from 'vitest';
import { parseBearerChallenge } from '../../../src/oci/challenge.js';
import { scopeSetKey } from '../../../src/oci/scope.js';

describe('parseBearerChallenge', () => {
  it.each([
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
      { realm: 'https://auth.docker.io/token', service: 'registry.docker.io' },
    ],
    ['bearer Realm="r", scope="repository:a/b:pull,push"', { realm: 'r', scope: 'repository:a/b:pull,push' }],
    ['Bearer realm="a \\"quoted\\" realm"', { realm: 'a "quoted" realm' }],
    ['Bearer', undefined],
    ['Basic realm="x"', undefined],
    [undefined, undefined],
    [['Bearer realm="x"'], undefined],
  ])('%j', (header, expected) => {
    expect(parseBearerChallenge(header)).toEqual(expected);
  });
});

describe('scopeSetKey', () => {
  it('is the same for the same scopes in any order', () => {
    const a = { type: 'repository', name: 'a', actions: ['pull'] };
    const b = { type: 'repository', name: 'b', actions: ['pull', 'push'] };
    expect(scopeSetKey([a, b])).toBe(scopeSetKey([b, a]));
    expect(scopeSetKey([a])).not.toBe(scopeSetKey([b]));
  });
});
