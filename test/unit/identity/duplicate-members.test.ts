import { describe, expect, it } from 'vitest';
import { findDuplicateMember } from '../../../src/identity/duplicate-members.js';

describe('findDuplicateMember', () => {
  it('finds repeats at any depth, after escapes decode', () => {
    expect(findDuplicateMember('{"sub":"a","sub":"b"}')).toBe('sub');
    expect(findDuplicateMember('{"a":{"ns":"x","ns":"y"}}')).toBe('ns');
    expect(findDuplicateMember('{"a":[{"k":1},{"k":2,"k":3}]}')).toBe('k');
    expect(findDuplicateMember('{"s\\u0075b":"a","sub":"b"}')).toBe('sub');
  });

  it('accepts the same name in sibling objects, names inside strings, and arrays of strings', () => {
    expect(findDuplicateMember('{"a":{"k":1},"b":{"k":2}}')).toBeUndefined();
    expect(findDuplicateMember('{"a":"\\"a\\":1,","b":["a","a"],"c":{}}')).toBeUndefined();
    expect(
      findDuplicateMember(
        '{"kubernetes.io":{"namespace":"n","pod":{"name":"p"},"serviceaccount":{"name":"s"}},"aud":["x","x"]}',
      ),
    ).toBeUndefined();
    expect(findDuplicateMember('[1,2,{"x":1}]')).toBeUndefined();
  });

  it('walks very deep documents without recursion', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(findDuplicateMember(deep)).toBeUndefined();
    const deepObj = `${'{"a":'.repeat(50_000)}{"b":1,"b":2}${'}'.repeat(50_000)}`;
    expect(findDuplicateMember(deepObj)).toBe('b');
  });
});
