import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { createCatalogFilter } from '../../../src/oci/catalog-filter.js';

/** The filter with `allow` deciding and names kept as they are, or `list` renaming. */
async function run(
  chunks: string[],
  allow: (n: string) => boolean,
  list = (n: string) => (allow(n) ? n : undefined),
): Promise<string> {
  let out = '';
  for await (const c of Readable.from(chunks.map((x) => Buffer.from(x))).pipe(createCatalogFilter(list)))
    out += (c as Buffer).toString();
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

  it('lists each kept name as `list` gives it (the prefix of an upstream added), JSON-escaped', async () => {
    const prefixed = (n: string) => (n.startsWith('team-a/') ? `hub/${n}` : undefined);
    const out = await run([BODY], () => true, prefixed);
    expect(JSON.parse(out)).toEqual({ repositories: ['hub/team-a/app', 'hub/team-a/tools'] });
    expect(
      JSON.parse(
        await run(
          ['{"repositories":["a"]}'],
          () => true,
          () => 'x"\\y',
        ),
      ),
    ).toEqual({ repositories: ['x"\\y'] });
  });

  it('judges names after JSON unescaping', async () => {
    const out = await run(['{"repositories":["team\\u002da/app","team-\\u0062/x"]}'], (n) => n === 'team-a/app');
    expect(JSON.parse(out)).toEqual({ repositories: ['team-a/app'] });
  });

  it('handles empty lists and JSON white space between tokens', async () => {
    expect(JSON.parse(await run(['{ "repositories" : [ ] }'], teamA))).toEqual({ repositories: [] });
    expect(JSON.parse(await run(['\r\n{\t"repositories"\n:\n[ "team-a/x" ,\n"b/y" ]\n}\n'], teamA))).toEqual({
      repositories: ['team-a/x'],
    });
  });

  // Only Distribution's shape passes: whatever follows the first list is dropped, so neither another
  // member nor a second `repositories` (a client's JSON parser keeps the last one) reaches a client.
  it.each([
    ['another member', '{"repositories":["team-a/x","b/y"],"next":"team-b/secret"}', ['team-a/x']],
    ['a duplicate list', '{"repositories":["team-a/x"],"repositories":["team-b/secret"]}', ['team-a/x']],
    ['another array', '{"repositories":["team-a/x"],["team-b/secret"]}', ['team-a/x']],
    ['a second document', '{"repositories":["team-a/x"]}{"repositories":["team-b/secret"]}', ['team-a/x']],
    ['garbage after the document', '{"repositories":["team-a/x"]} ["team-b/secret"]', ['team-a/x']],
    ['a member before the list', '{"x":1,"repositories":["team-a/x"]}', []],
    ['white space inside the key', '{"repo sitories":["team-a/x"]}', []],
    ['an escaped key', '{"repositor\\u0069es":["team-a/x"]}', []],
    ['an array at the top', '["team-a/x"]', []],
    ['a null list', '{"repositories":null}', []],
    ['a nested array', '{"repositories":[["team-a/x"],"team-a/y"]}', []],
    ['an object element', '{"repositories":["team-a/x",{"n":"team-a/y"}]}', ['team-a/x']],
    ['a trailing comma', '{"repositories":["team-a/x",]}', ['team-a/x']],
    ['a leading comma', '{"repositories":[,"team-a/x"]}', []],
    ['two names without a comma', '{"repositories":["team-a/x" "team-a/y"]}', ['team-a/x']],
    ['a raw control character in a name', '{"repositories":["team-a/x","team-a/\u0001y","team-a/z"]}', ['team-a/x']],
    ['a non-JSON space', '{"repositories":[\u00a0"team-a/x"]}', []],
  ])('fails closed on %s', async (_what, body, expected) => {
    const out = await run([body], teamA);
    expect(JSON.parse(out)).toEqual({ repositories: expected });
    // and the same for every split into two chunks
    for (let i = 1; i < body.length; i++) expect(await run([body.slice(0, i), body.slice(i)], teamA)).toBe(out);
  });

  it('fails closed on anything else', async () => {
    expect(JSON.parse(await run(['{"errors":[{"code":"UNAUTHORIZED"}]}'], () => true))).toEqual({ repositories: [] });
    expect(JSON.parse(await run(['{"repositories":["team-a/x",42,"team-a/y"]}'], () => true))).toEqual({
      repositories: ['team-a/x'],
    });
    expect(JSON.parse(await run(['{"repositories":["team-a/x","team-a/y'], () => true))).toEqual({
      repositories: ['team-a/x'],
    });
    expect(JSON.parse(await run([''], () => true))).toEqual({ repositories: [] });
    expect(JSON.parse(await run([`{"repositories":["${'a'.repeat(5000)}","b"]}`], () => true))).toEqual({
      repositories: [],
    });
  });
});
