import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { createCatalogFilter } from '../../../src/oci/catalog-filter.js';

async function run(chunks: string[], allow: (n: string) => boolean): Promise<string> {
  let out = '';
  for await (const c of Readable.from(chunks.map((x) => Buffer.from(x))).pipe(createCatalogFilter(allow))) out += (c as Buffer).toString();
  return out;
}

const teamA = (n: string) => n.startsWith('team-a/');
const BODY = '{"repositories":["shared/base","team-a/app","team-a/tools","team-b/secret","team\\u002db/x"]}\n';

describe('catalog filter', () => {
  it('keeps only allowed names and stays valid JSON', async () => {
    const out = await run([BODY], teamA);
    expect(JSON.parse(out)).toEqual({ repositories: ['team-a/app', 'team-a/tools'] });
  });

  it('gives the same answer for every split of the body into two chunks', async () => {
    const whole = await run([BODY], teamA);
    for (let i = 1; i < BODY.length; i++) {
      expect(await run([BODY.slice(0, i), BODY.slice(i)], teamA), `split at ${i}`).toBe(whole);
    }
    // and one byte at a time
    expect(await run([...BODY], teamA)).toBe(whole);
  });

  it('judges names after JSON unescaping', async () => {
    const out = await run(['{"repositories":["team\\u002da/app","team-\\u0062/x"]}'], (n) => n === 'team-a/app');
    expect(JSON.parse(out)).toEqual({ repositories: ['team-a/app'] });
  });

  it('handles empty lists, white space and other members', async () => {
    expect(JSON.parse(await run(['{ "repositories" : [ ] }'], teamA))).toEqual({ repositories: [] });
    expect(JSON.parse(await run(['{"repositories": ["team-a/x" , "b/y"], "next": "z"}'], teamA))).toEqual({ repositories: ['team-a/x'], next: 'z' });
  });

  it('fails closed on anything else', async () => {
    expect(JSON.parse(await run(['{"errors":[{"code":"UNAUTHORIZED"}]}'], () => true))).toEqual({ repositories: [] });
    expect(JSON.parse(await run(['{"repositories":["team-a/x",42,"team-a/y"]}'], () => true))).toEqual({ repositories: ['team-a/x'] });
    expect(JSON.parse(await run(['{"repositories":["team-a/x","team-a/y'], () => true))).toEqual({ repositories: ['team-a/x'] });
    expect(JSON.parse(await run([''], () => true))).toEqual({ repositories: [] });
    expect(JSON.parse(await run([`{"repositories":["${'a'.repeat(5000)}","b"]}`], () => true))).toEqual({ repositories: [] });
  });
});
