import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { configFileSchema } from '../src/config/schema.js';

/**
 * `config.schema.json`: the JSON Schema of the config file, generated from the zod schema that
 * validates it, for editors (`# yaml-language-server: $schema=...`). `npm run schema` rewrites it;
 * a unit test fails when it is out of date.
 */

export const CONFIG_SCHEMA_PATH = fileURLToPath(new URL('../config.schema.json', import.meta.url));

export function configJsonSchema(): string {
  // "input": what a file may contain (durations as `30s`), not what load() returns (milliseconds).
  const schema = z.toJSONSchema(configFileSchema, { io: 'input', target: 'draft-2020-12' });
  return `${JSON.stringify({ ...schema, title: 'registry-auth-proxy configuration file' }, null, 2)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(CONFIG_SCHEMA_PATH, configJsonSchema());
  process.stdout.write(`wrote ${CONFIG_SCHEMA_PATH}\n`);
}
