import { describe, expect, it } from 'vitest';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { CONFIG_DOCS_PATH, configDocs } from '../../scripts/config-docs.js';
import { buildConfig } from '../../src/config/load.js';
import { compilePolicyText } from '../../src/policy/load.js';
import { runExecutable } from '../helpers/cli.js';

/**
 * What the docs tell users to paste cannot rot silently. Every fenced block of README.md,
 * CONTRIBUTING.md and docs/*.md is one of:
 * - ```yaml: a config file (validated as the proxy validates one) or a policy file (`rules:`,
 *   compiled and type-checked), unless the line before it is `<!-- doc-test: skip: <why> -->`
 *   (Distribution's config, Kubernetes manifests);
 * - ```sh: the line before it says `<!-- doc-test: run -->` (run here with bash -e, offline, in an
 *   empty directory with `policies/` linked, both commands on PATH from this checkout) or
 *   `<!-- doc-test: skip: <why> -->` (a cluster, a registry, a cloud): an unmarked one fails.
 * And docs/configuration.md is what `npm run docs:config` renders from the schema now.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCS = ['README.md', 'CONTRIBUTING.md', ...readdirSync(join(ROOT, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
  f.endsWith('.md'),
);

interface Block {
  file: string;
  line: number;
  lang: string;
  text: string;
  /** `run`, `skip: <why>`, or '' when the line before the fence carries no marker. */
  marker: string;
}

/** Fenced blocks of a markdown file, with the `<!-- doc-test: … -->` marker right before each. */
function blocks(file: string): Block[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const found: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    // Fences inside list items are indented; the info string is the language.
    const open = /^(\s*)```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const end = lines.findIndex((l, j) => j > i && /^\s*```\s*$/.test(l));
    if (end < 0) throw new Error(`${file}:${i + 1}: unclosed code fence`);
    const marker = /^\s*<!-- doc-test: (.*?) -->\s*$/.exec(lines[i - 1] ?? '')?.[1] ?? '';
    const text = lines
      .slice(i + 1, end)
      .map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length)))
      .join('\n');
    found.push({ file, line: i + 1, lang: open[2]!, text, marker });
    i = end;
  }
  return found;
}

const all = DOCS.flatMap(blocks);
const where = (b: Block) => `${b.file}:${b.line}`;
const isShell = (b: Block) => ['sh', 'bash', 'shell', 'console'].includes(b.lang);

/** A YAML block's problem, or 'ok': a policy file compiles, anything else is a config file. */
function yamlProblem(b: Block): string {
  try {
    for (const doc of parseAllDocuments(b.text)) {
      if (doc.errors.length > 0) return doc.errors[0]!.message;
      const value = doc.toJS() as unknown;
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a mapping';
      if ('rules' in value) compilePolicyText(doc.toString(), where(b));
      else buildConfig(value as Record<string, unknown>, {}, 'example.yaml');
    }
  } catch (err) {
    return (err as Error).message;
  }
  return 'ok';
}

describe('the docs', () => {
  it('docs/configuration.md is what `npm run docs:config` renders from the schema', () => {
    const current = readFileSync(CONFIG_DOCS_PATH, 'utf8');
    expect(current === configDocs(), 'docs/configuration.md is stale: run `npm run docs:config`').toBe(true);
  });

  it('finds the blocks (the parser reads the files)', () => {
    expect(all.filter((b) => b.lang === 'yaml').length).toBeGreaterThan(20);
    expect(all.filter((b) => b.marker === 'run').length).toBeGreaterThanOrEqual(4);
  });

  it('every YAML example is a valid config or policy file, unless marked skip with a reason', () => {
    const problems = all
      .filter((b) => b.lang === 'yaml' && !b.marker.startsWith('skip: '))
      .map((b) => `${where(b)}: ${yamlProblem(b)}`)
      .filter((p) => !p.endsWith(': ok'));
    expect(problems).toEqual([]);
  });

  it('every relative link points at a file that exists, and at a heading of it', () => {
    const broken: string[] = [];
    for (const file of DOCS) {
      const text = readFileSync(join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue; // https:, mailto:
        const [path, anchor] = target!.split('#') as [string, string | undefined];
        const resolved = path ? join(dirname(join(ROOT, file)), path) : join(ROOT, file);
        if (!existsSync(resolved)) broken.push(`${file}: ${target} (no such file)`);
        else if (anchor && !anchors(resolved).has(anchor)) broken.push(`${file}: ${target} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('every shell block says whether it runs here: <!-- doc-test: run --> or <!-- doc-test: skip: <why> -->', () => {
    const unmarked = all.filter((b) => isShell(b) && b.marker !== 'run' && !/^skip: \S/.test(b.marker)).map(where);
    expect(unmarked).toEqual([]);
    // `run` is for shell only: a marked YAML block is checked anyway
    expect(all.filter((b) => b.marker === 'run' && !isShell(b)).map(where)).toEqual([]);
  });

  it('every shell block marked run succeeds, offline, with the commands of this checkout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rap-docs-'));
    try {
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      // The built CLI when dist/ is current (npm test builds first: fast), else the sources via tsx.
      const built = statSync(join(ROOT, 'dist/build-info.json'), { throwIfNoEntry: false })?.mtimeMs ?? 0;
      const fresh = built > newest(join(ROOT, 'src'));
      // tsx by path: the blocks run in a directory where `--import tsx` would not resolve
      const tsx = ['--import', pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href];
      const entries = {
        'registry-auth-proxy': fresh ? ['bin/registry-auth-proxy.js'] : [...tsx, 'test/helpers/cli-entry.ts'],
        'docker-credential-registry-auth-proxy': fresh
          ? ['bin/docker-credential-registry-auth-proxy.js']
          : [...tsx, 'test/helpers/credential-helper-entry.ts'],
      };
      for (const [name, args] of Object.entries(entries)) {
        const script = join(bin, name);
        const argv = args.map((a) => (/\.[jt]s$/.test(a) ? join(ROOT, a) : a));
        const quoted = [process.execPath, ...argv].map((a) => `'${a}'`).join(' ');
        writeFileSync(script, `#!/bin/sh\nexec ${quoted} "$@"\n`);
        chmodSync(script, 0o755);
      }
      const run = async (b: Block): Promise<string | undefined> => {
        const cwd = mkdtempSync(join(dir, 'block-'));
        symlinkSync(join(ROOT, 'policies'), join(cwd, 'policies'));
        // --norc: node's pipes are sockets, and bash on a socket reads /etc/bash.bashrc (rshd heuristic)
        const r = await runExecutable('bash', ['--norc', '-euo', 'pipefail', '-c', b.text], {
          cwd,
          cleanEnv: true,
          env: { PATH: `${bin}:${process.env.PATH}`, HOME: cwd },
          timeoutMs: 60_000,
        });
        return r.code === 0 ? undefined : `${where(b)}: exit ${r.code}\n${r.stderr.slice(-2000)}`;
      };
      // Two blocks at a time (two cores); each is a few CLI starts.
      const queue = all.filter((x) => x.marker === 'run');
      const failures: string[] = [];
      await Promise.all(
        [0, 1].map(async () => {
          for (let b = queue.shift(); b; b = queue.shift()) {
            const failure = await run(b);
            if (failure) failures.push(failure);
          }
        }),
      );
      expect(failures).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** GitHub's anchors of a markdown file's headings: lower case, punctuation dropped, spaces to hyphens. */
function anchors(file: string): Set<string> {
  if (!file.endsWith('.md')) return new Set();
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set(
    [...text.matchAll(/^#{1,6} (.+)$/gm)].map(([, h]) =>
      h!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    ),
  );
}

/** The newest modification time of a file under `dir` (as scripts/build-if-stale.js decides). */
function newest(dir: string): number {
  let max = 0;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true }))
    if (e.isFile()) max = Math.max(max, statSync(join(e.parentPath, e.name)).mtimeMs);
  return max;
}
