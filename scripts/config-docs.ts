import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configJsonSchema } from './config-schema.js';

/**
 * `docs/configuration.md`: every key of the config file with its type, default and description,
 * rendered from the JSON Schema that `config-schema.ts` derives from the zod schema the proxy
 * validates with, so the reference cannot drift from what is accepted. `npm run docs:config`
 * rewrites it; a unit test fails when it is out of date.
 */

export const CONFIG_DOCS_PATH = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));

type Node = Record<string, unknown>;

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

const asNode = (v: unknown): Node => (typeof v === 'object' && v !== null ? (v as Node) : {});
const list = (v: unknown): Node[] => (Array.isArray(v) ? v.map(asNode) : []);

/** `not: {}`: a key the schema names only to refuse it (`password` beside `passwordFile`). */
const refused = (n: Node): boolean => 'not' in n && Object.keys(asNode(n.not)).length === 0;

/** The alternatives of a node, `null` left out (an optional key may be written as `~`). */
function alternatives(n: Node): Node[] {
  const alts = [...list(n.anyOf), ...list(n.oneOf)];
  return alts.filter((a) => a.type !== 'null');
}

function range(n: Node): string {
  const min = n.minimum as number | undefined;
  const max = n.maximum as number | undefined;
  if (min !== undefined && max !== undefined) return ` (${min}–${max})`;
  if (min !== undefined) return ` (≥ ${min})`;
  if (max !== undefined) return ` (≤ ${max})`;
  return '';
}

function typeOf(n: Node): string {
  if ('const' in n) return JSON.stringify(n.const);
  if (Array.isArray(n.enum)) return n.enum.map((v) => JSON.stringify(v)).join(' | ');
  const alts = alternatives(n);
  if (alts.length > 0) return [...new Set(alts.map(typeOf))].join(' | ');
  const t = n.type;
  if (Array.isArray(t)) {
    const types = t.filter((x) => x !== 'null');
    // Durations: `30s`, `5m`, or milliseconds as a number.
    return types.length === 2 && types.includes('string') && types.includes('number') ? 'duration' : types.join(' | ');
  }
  if (t === 'array') {
    const item = typeOf(asNode(n.items));
    return item.includes(' | ') ? `(${item})[]` : `${item}[]`;
  }
  if (t === 'object' && !n.properties && typeof n.additionalProperties === 'object')
    return `map of ${typeOf(asNode(n.additionalProperties))}`;
  if (t === 'integer' || t === 'number') return `${t}${range(n)}`;
  return typeof t === 'string' ? t : 'any';
}

function defaultOf(n: Node): string {
  if (!('default' in n)) return '';
  const d = n.default;
  // An object's `{}` default only says "its keys take their defaults": those rows follow.
  if (typeof d === 'object' && d !== null && !Array.isArray(d) && Object.keys(d).length === 0) return '';
  return `\`${JSON.stringify(d)}\``;
}

/** The object shapes a node stands for: itself, or each alternative that is an object. */
function objectShapes(n: Node): Node[] {
  if (n.type === 'object' && n.properties) return [n];
  if (n.type === 'array') return objectShapes(asNode(n.items));
  return alternatives(n).flatMap(objectShapes);
}

/** The discriminator of an alternative (`type: basic`), when it has one: [key, value]. */
function discriminator(shape: Node): [string, string] | undefined {
  for (const [k, v] of Object.entries(asNode(shape.properties))) {
    const c = asNode(v).const;
    if (typeof c === 'string') return [k, c];
  }
  return undefined;
}

function rows(key: string, n: Node, note: string, required: boolean): Row[] {
  const description = [note, required ? '**required**' : '', typeof n.description === 'string' ? n.description : '']
    .filter(Boolean)
    .join(' ');
  const out: Row[] = [{ key, type: typeOf(n), default: defaultOf(n), description }];
  const shapes = objectShapes(n);
  const childKey = (k: string) => `${key}${n.type === 'array' ? '[]' : ''}.${k}`;
  // A union told apart by one constant key (`auth.type`): that key once, with every value.
  const tags = shapes.length > 1 ? shapes.map(discriminator) : [];
  const tagKey = tags.length > 0 && tags.every((t) => t && t[0] === tags[0]![0]) ? tags[0]![0] : undefined;
  if (tagKey) {
    const values = tags.map((t) => JSON.stringify(t![1])).join(' | ');
    const dflt = shapes.map((s) => defaultOf(asNode(asNode(s.properties)[tagKey]))).find(Boolean) ?? '';
    out.push({ key: childKey(tagKey), type: values, default: dflt, description: 'which of the variants below' });
  }
  for (const [i, shape] of shapes.entries()) {
    const tag = tagKey ? tags[i] : undefined;
    const req = new Set(Array.isArray(shape.required) ? (shape.required as string[]) : []);
    // An untagged union (`require: [{key}, {keyless}]`): name each variant by its required keys.
    const label = tag
      ? `${tag[0]}: ${tag[1]}`
      : shapes.length > 1
        ? `an entry with ${[...req].map((r) => `\`${r}\``).join(', ') || 'no required key'}`
        : undefined;
    for (const [k, v] of Object.entries(asNode(shape.properties))) {
      const child = asNode(v);
      if (refused(child) || k === tagKey) continue;
      const note = !label ? '' : tag ? `(with \`${label}\`)` : `(in ${label})`;
      out.push(...rows(childKey(k), child, note, req.has(k)));
    }
  }
  return out;
}

// Table cells: `|` would end the cell, `<x>` would be read as an HTML tag.
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/\n/g, ' ');

export function configDocs(): string {
  const schema = JSON.parse(configJsonSchema()) as Node;
  const out = [
    '# Configuration reference',
    '',
    '<!-- Generated from the config schema (src/config/schema.ts) by `npm run docs:config`: do not edit by hand. -->',
    '',
    'Every key of the file `--config` names, with its type, default and description, as the proxy',
    'validates it. Unknown keys are errors in every section. Durations are `30s`, `5m`, `1h` (or',
    'milliseconds as a number). A key written `a[].b` is the key `b` of each entry of the list `a`;',
    '"(with `type: x`)" marks a key of one variant only. The annotated file, and what the keys do',
    'together: [config-file.md](config-file.md). Rules that involve flags or several keys (`publicURL`',
    'on a non-loopback listener, `idleTimeout` against `upstream.timeout`, unique names) are checked at',
    'start-up.',
    '',
  ];
  const top = asNode(schema.properties);
  out.push(
    'Sections: ' +
      Object.keys(top)
        .map((k) => `[\`${k}\`](#${k.toLowerCase()})`)
        .join(', ') +
      '.',
    '',
  );
  for (const [k, v] of Object.entries(top)) {
    out.push(`## \`${k}\``, '', '| key | type | default | description |', '| --- | --- | --- | --- |');
    for (const r of rows(k, asNode(v), '', false))
      out.push(`| \`${r.key}\` | ${cell(r.type)} | ${cell(r.default)} | ${cell(r.description)} |`);
    out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(CONFIG_DOCS_PATH, configDocs());
  process.stdout.write(`wrote ${CONFIG_DOCS_PATH}\n`);
}
