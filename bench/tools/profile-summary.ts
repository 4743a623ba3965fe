/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by file, so
 * a profiling run points at what to fix. Usage: node --import tsx bench/tools/profile-summary.ts <file>
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
const prof = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
};
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const fn = new Map<string, number>();
const file = new Map<string, number>();
for (const [id, us] of self) {
  const n = byId.get(id)!;
  const url = n.callFrame.url
    .replace(/^.*node_modules\//, 'nm:')
    .replace(/^.*\/dist\//, 'dist/')
    .replace(/^node:/, 'node:');
  const key = `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber}`;
  fn.set(key, (fn.get(key) ?? 0) + us);
  const f = url.startsWith('nm:')
    ? url
        .split('/')
        .slice(0, url.startsWith('nm:@') ? 2 : 1)
        .join('/')
    : url || n.callFrame.functionName;
  file.set(f, (file.get(f) ?? 0) + us);
}
const top = (m: Map<string, number>, k: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(([name, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${name}`)
    .join('\n');
console.log(
  `total ${(total / 1e6).toFixed(2)} s sampled\n\n== by module ==\n${top(file, 25)}\n\n== by function ==\n${top(fn, 40)}`,
);

// Inclusive time of selected functions (self + callees), to see what a code path costs as a whole.
const inclusive = new Map<number, number>();
function incl(id: number): number {
  const cached = inclusive.get(id);
  if (cached !== undefined) return cached;
  const n = byId.get(id)!;
  let t = self.get(id) ?? 0;
  for (const c of n.children ?? []) t += incl(c);
  inclusive.set(id, t);
  return t;
}
const watch = (
  process.env.PROFILE_INCLUSIVE ??
  'handleToken,verify,verifyUncached,jwtVerify,issueRegistryToken,decide,serve,handler,forward,authorize,LOG,write,stringify'
).split(',');
const inclByName = new Map<string, number>();
for (const n of prof.nodes) {
  if (!watch.includes(n.callFrame.functionName)) continue;
  // count only the outermost frame of a name on each path
  inclByName.set(n.callFrame.functionName, (inclByName.get(n.callFrame.functionName) ?? 0) + incl(n.id));
}
console.log(
  `\n== inclusive ==\n${[...inclByName.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`)
    .join('\n')}`,
);
