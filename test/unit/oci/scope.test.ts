import { describe, expect, it } from 'vitest';
import { formatScope, isValidRepositoryName, parseScope, parseScopes, ScopeError } from '../../../src/oci/scope.js';

describe('scope grammar', () => {
  it('parses repository and registry scopes', () => {
    expect(parseScope('repository:team/app:pull,push')).toEqual({
      type: 'repository',
      name: 'team/app',
      actions: ['pull', 'push'],
    });
    expect(parseScope('repository:a:*')).toEqual({ type: 'repository', name: 'a', actions: ['*'] });
    expect(parseScope('registry:catalog:*')).toEqual({ type: 'registry', name: 'catalog', actions: ['*'] });
    expect(parseScope('repository(plugin):a/b:pull')).toMatchObject({ type: 'repository', name: 'a/b' });
    expect(parseScope('repository:a/b:')).toMatchObject({ actions: [] });
    expect(parseScope('repository:a/b:pull,pull')).toMatchObject({ actions: ['pull'] });
  });

  it("splits containerd's space-separated scopes and merges duplicates", () => {
    expect(parseScopes(['repository:a/b:pull repository:c:pull', 'repository:a/b:push'])).toEqual([
      { type: 'repository', name: 'a/b', actions: ['pull', 'push'] },
      { type: 'repository', name: 'c', actions: ['pull'] },
    ]);
    expect(parseScopes(['', '  '])).toEqual([]);
  });

  it.each([
    'repository',
    'repository:a',
    ':a:pull',
    'repository:A/b:pull',
    'repository:a//b:pull',
    'repository:a/../b:pull',
    'repository:./a:pull',
    'repository:a/:pull',
    'repository:/a:pull',
    'repository:a b:pull',
    'repository:a/b:pu ll',
    'repository:a/b:PULL',
    'repository:a/b:pull;x',
    'repository:-a:pull',
    'repository:a-:pull',
    'repository:a..b:pull',
    'repository:ａ/b:pull',
    'registry:other:*',
    'Repository:a:pull',
    `repository:${'a'.repeat(256)}:pull`,
  ])('rejects %s', (s) => {
    expect(() => parseScope(s)).toThrow(ScopeError);
  });

  it('follows the OCI repository name grammar', () => {
    for (const ok of ['a', 'a/b/c', 'a-b', 'a--b', 'a_b', 'a__b', 'a.b', 'blobs/manifests', '0x/1'])
      expect(isValidRepositoryName(ok), ok).toBe(true);
    for (const bad of ['', 'A', 'a___b', 'a.-b', '_a', 'a/', '/a', 'a//b', 'a:b', 'a%2fb', 'a\u0000b'])
      expect(isValidRepositoryName(bad), bad).toBe(false);
  });

  it('formats back', () => {
    expect(formatScope(parseScope('repository:a/b:pull,push'))).toBe('repository:a/b:pull,push');
  });
});
